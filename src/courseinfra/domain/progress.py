"""Course progress, course-unit metrics and AUDIT decisions for one enrolment: pure functions.

:func:`aggregate` takes an enrolment's state, the content updates of a micro-batch and the course's
structure, and returns the new state, the unit metrics and the AUDIT events that this batch emits.
An AUDIT event is a state transition: its condition turned true in this batch and the state does not
show it emitted before. Content statuses never go down and a course stays started and completed, so
their transitions happen once; a unit's condition can turn false again when a republication adds
leaves to it, so the state keeps a mark per unit emitted (``units_started``, ``units_completed``).
Applied by one writer per enrolment at a time, the same events in any order, duplicated or replayed,
give the same final state and emit each (enrolment, object, action) exactly once
(docs/decisions/0018-audit-from-state-transitions.md).

Rules (docs/decisions/0007-progress-and-audit-rules.md):
- a content's status is the highest ever reported (0 not started, 1 in progress, 2 completed);
- the leaves that count toward a collection's completion are its leaf nodes minus its optional nodes
  (all its leaf nodes where every one is optional);
- ``completionpercentage`` is floor(100 * completed required / required): 100 only when all are done;
  ``progress`` is the number of completed required leaves, as in Sunbird's ``user_enrolments``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

NOT_STARTED, IN_PROGRESS, COMPLETED = 0, 1, 2


class EnrolmentStatus(IntEnum):
    NOT_STARTED = 0
    IN_PROGRESS = 1
    COMPLETED = 2


class AuditObject(StrEnum):
    COURSE = "Course"
    COURSE_UNIT = "CourseUnit"
    CONTENT = "Content"


class AuditAction(StrEnum):
    ENROL = "enrol"
    START = "start"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True, order=True)
class EnrolmentKey:
    user_id: str
    course_id: str
    batch_id: str


@dataclass(frozen=True, slots=True)
class ContentUpdate:
    content_id: str
    status: int


@dataclass(frozen=True, slots=True)
class CourseView:
    """What the aggregator needs of a published course: its leaves and optional leaves, the leaves of
    every unit the batch touches, and the ancestors of every content it touches."""

    course_id: str
    leaf_nodes: Mapping[str, frozenset[str]]
    optional_nodes: Mapping[str, frozenset[str]]
    ancestors: Mapping[str, tuple[str, ...]]
    channel: str | None = None
    # The required leaves of each collection asked for, computed once per view (it is asked for every
    # unit of every enrolment of a batch).
    _required: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    def required(self, collection_id: str) -> frozenset[str]:
        found = self._required.get(collection_id)
        if found is None:
            leaves = self.leaf_nodes.get(collection_id, frozenset())
            found = self._required[collection_id] = (
                leaves - self.optional_nodes.get(collection_id, frozenset())
            ) or leaves
        return found

    @property
    def course_leaves(self) -> frozenset[str]:
        return self.leaf_nodes.get(self.course_id, frozenset())


@dataclass(frozen=True, slots=True)
class EnrolmentState:
    """The columns of ``user_enrolments`` the aggregator reads and writes."""

    key: EnrolmentKey
    content_status: Mapping[str, int] = field(default_factory=dict)
    status: EnrolmentStatus = EnrolmentStatus.NOT_STARTED
    progress: int = 0
    completion_percentage: int = 0
    completed_on: datetime | None = None
    last_read_content_id: str | None = None
    last_read_content_status: int | None = None
    last_updated: datetime | None = None
    #: The units whose ``start`` / ``complete`` AUDIT event was emitted: a mark outlives the condition.
    units_started: frozenset[str] = frozenset()
    units_completed: frozenset[str] = frozenset()
    #: Content id to when it was first reported started and first reported completed (milliseconds
    #: since the epoch, UTC, the time the aggregator applied it; ``None`` while not completed), so that
    #: a report of a past date knows what had been reached by then. Only contents with a status >= 1.
    status_times: Mapping[str, StatusTimes] = field(default_factory=dict)


#: When a content was first started and first completed, in milliseconds since the epoch (UTC).
StatusTimes = tuple[int, int | None]


def epoch_ms(moment: datetime) -> int:
    """``moment`` (timezone-aware) in whole milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def advance_times(
    times: Mapping[str, StatusTimes],
    before: Mapping[str, int],
    after: Mapping[str, int],
    contents: Iterable[str],
    now_ms: int,
) -> Mapping[str, StatusTimes]:
    """``times`` with the statuses of ``contents`` that rose from ``before`` to ``after`` stamped at
    ``now_ms``: a content started for the first time gets its start, completed for the first time its
    completion (a content reported completed straight away is started then too). Earlier stamps are
    kept: a repeated or replayed event changes nothing. Returns ``times`` itself when nothing rose."""
    changed: dict[str, StatusTimes] | None = None
    for content in contents:
        status, was = after.get(content, NOT_STARTED), before.get(content, NOT_STARTED)
        if status <= was or status < IN_PROGRESS:
            continue
        started, completed = times.get(content, (now_ms, None))
        if status == COMPLETED and completed is None:
            completed = now_ms
        if changed is None:
            changed = dict(times)
        changed[content] = (started, completed)
    return times if changed is None else changed


@dataclass(frozen=True, slots=True)
class UnitMetrics:
    """One row of ``user_activity_agg``: the progress of a user in one collection of a batch."""

    activity_type: str
    activity_id: str
    user_id: str
    context_id: str
    completed_count: int
    leaf_nodes_count: int
    progress: int

    @property
    def agg(self) -> dict[str, int]:
        return {
            "completedCount": self.completed_count,
            "leafNodesCount": self.leaf_nodes_count,
            "progress": self.progress,
        }


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An AUDIT event, emitted once per enrolment, object and action (``key``)."""

    enrolment: EnrolmentKey
    object_type: AuditObject
    object_id: str
    action: AuditAction

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        e = self.enrolment
        return (e.user_id, e.course_id, e.batch_id, self.object_type.value, self.object_id, self.action.value)

    @property
    def mid(self) -> str:
        """A message id derived from the key: the same AUDIT event always has the same mid."""
        e = self.enrolment
        return audit_mid(e.user_id, e.course_id, e.batch_id, self.object_type, self.object_id, self.action)

    def telemetry(self, ets: int, channel: str | None) -> dict[str, Any]:
        """The event in the telemetry v3 AUDIT shape."""
        e = self.enrolment
        return audit_telemetry(
            e.user_id, e.course_id, e.batch_id, self.object_type, self.object_id, self.action, ets, channel
        )


def audit_mid(
    user_id: str, course_id: str, batch_id: str, object_type: str, object_id: str, action: str
) -> str:
    """The ``mid`` of the AUDIT event of that key: ``AUDIT.`` and 32 hex digits of the SHA-256 of the
    six fields joined by U+001F. Consumers drop repeats by it, across versions: it never changes."""
    text = "\x1f".join((user_id, course_id, batch_id, object_type, object_id, action))
    return f"AUDIT.{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def audit_telemetry(
    user_id: str,
    course_id: str,
    batch_id: str,
    object_type: str,
    object_id: str,
    action: str,
    ets: int,
    channel: str | None,
) -> dict[str, Any]:
    """The AUDIT event of that key in the telemetry v3 shape, at ``ets`` (milliseconds), from plain
    strings (what the relay reads), so that a relay of millions of events builds no record first."""
    return {
        "eid": "AUDIT",
        "ets": ets,
        "ver": "3.0",
        "mid": audit_mid(user_id, course_id, batch_id, object_type, object_id, action),
        "actor": {"id": user_id, "type": "User"},
        "context": {
            "channel": channel or "",
            "env": "Course",
            "pdata": {"id": "courseinfra", "pid": "course-metrics-aggregator", "ver": "1.0"},
            "cdata": [{"type": "CourseBatch", "id": batch_id}, {"type": "Course", "id": course_id}],
        },
        "object": {"id": object_id, "type": str(object_type), "rollup": {"l1": course_id}},
        "edata": {
            "type": str(action),
            "props": ["status", "completedon"] if action == AuditAction.COMPLETE else ["status"],
        },
    }


@dataclass(frozen=True, slots=True)
class Aggregation:
    """``state`` with ``changed`` (whether anything but its time differs from the state it came from),
    the unit metrics to write and the AUDIT events to emit."""

    state: EnrolmentState
    metrics: tuple[UnitMetrics, ...]
    audits: tuple[AuditRecord, ...]
    course_completed_now: bool
    changed: bool = True
    progress_changed: bool = True


def percentage(done: int, total: int) -> int:
    """floor(100 * done / total), so that 100 means every one is done."""
    return 0 if total == 0 else (100 * done) // total


def merge_status(current: Mapping[str, int], updates: Iterable[ContentUpdate]) -> dict[str, int]:
    """The highest status ever reported per content: a completed content stays completed."""
    merged = dict(current)
    for update in updates:
        if update.status > merged.get(update.content_id, -1):
            merged[update.content_id] = update.status
    return merged


def _transitions(
    state: EnrolmentState,
    statuses: Mapping[str, int],
    completed: frozenset[str] | set[str],
    course_started: bool,
    course_complete: bool,
    contents: Sequence[str],
    units: Iterable[str],
    course: CourseView,
) -> list[AuditRecord]:
    """The AUDIT events whose condition holds in ``statuses`` (``completed``: its completed contents)
    for the course and the given units and contents and that ``state`` does not show emitted: a
    content's status was lower, the course was not started or not completed, the unit carries no mark."""
    key = state.key
    before = state.content_status
    emitted: list[AuditRecord] = []
    if course_started and state.status is EnrolmentStatus.NOT_STARTED:
        emitted.append(AuditRecord(key, AuditObject.COURSE, course.course_id, AuditAction.ENROL))
    if course_complete and state.status is not EnrolmentStatus.COMPLETED:
        emitted.append(AuditRecord(key, AuditObject.COURSE, course.course_id, AuditAction.COMPLETE))
    for unit in units:
        required = course.required(unit)
        done = len(required & completed)
        if done >= 1 and unit not in state.units_started:
            emitted.append(AuditRecord(key, AuditObject.COURSE_UNIT, unit, AuditAction.START))
        if required and done == len(required) and unit not in state.units_completed:
            emitted.append(AuditRecord(key, AuditObject.COURSE_UNIT, unit, AuditAction.COMPLETE))
    for content in contents:
        status, was = statuses.get(content, NOT_STARTED), before.get(content, NOT_STARTED)
        if status >= IN_PROGRESS > was:
            emitted.append(AuditRecord(key, AuditObject.CONTENT, content, AuditAction.START))
        if status == COMPLETED != was:
            emitted.append(AuditRecord(key, AuditObject.CONTENT, content, AuditAction.COMPLETE))
    return emitted


def aggregate(
    state: EnrolmentState,
    updates: Sequence[ContentUpdate],
    course: CourseView,
    now: datetime,
    *,
    only_new: bool = True,
) -> Aggregation:
    """Apply every update of a micro-batch to one enrolment (see the module's rules).

    The AUDIT events are the transitions of the objects the batch touched (see :func:`_transitions`),
    whatever ``only_new`` says; ``only_new=False`` writes the metric of every touched collection, not
    only those that changed.
    """
    key = state.key
    merged = merge_status(state.content_status, updates)
    completed = {content for content, status in merged.items() if status == COMPLETED}
    leaves = course.course_leaves
    required = course.required(course.course_id)
    done = len(required & completed)
    percent = percentage(done, len(required))
    is_complete = bool(required) and done == len(required)
    was_complete = state.status is EnrolmentStatus.COMPLETED
    started = any(status >= IN_PROGRESS and content in leaves for content, status in merged.items())
    if was_complete or is_complete:
        status = EnrolmentStatus.COMPLETED
    elif started:
        status = EnrolmentStatus.IN_PROGRESS
    else:
        status = state.status
    completion = 100 if was_complete else percent
    completed_on = state.completed_on or (now if status is EnrolmentStatus.COMPLETED else None)
    last = updates[-1] if updates else None
    status_times = advance_times(
        state.status_times,
        state.content_status,
        merged,
        dict.fromkeys(update.content_id for update in updates),
        epoch_ms(now),
    )
    last_read = last.content_id if last else state.last_read_content_id
    last_read_status = merged[last.content_id] if last else state.last_read_content_status

    touched_contents = [c for c in dict.fromkeys(u.content_id for u in updates) if c in course.course_leaves]
    touched_units = list(
        dict.fromkeys(
            unit
            for content in touched_contents
            for unit in course.ancestors.get(content, ())
            if unit != course.course_id
        )
    )
    context = f"cb:{key.batch_id}"
    # With only_new, a metric is written where it changed or where its collection is touched for the
    # first time: a repeated or stale event writes no row.
    completed_before = {content for content, status in state.content_status.items() if status == COMPLETED}
    metrics = []
    if (
        not only_new
        or not state.content_status
        or (done, percent) != (state.progress, state.completion_percentage)
    ):
        metrics.append(
            UnitMetrics(
                "Course",
                course.course_id,
                key.user_id,
                context,
                done,
                len(required),
                completion,
            )
        )
    for unit in touched_units:
        unit_required = course.required(unit)
        unit_done = len(unit_required & completed)
        if (
            only_new
            and unit_done == len(unit_required & completed_before)
            and not course.leaf_nodes.get(unit, frozenset()).isdisjoint(state.content_status)
        ):
            continue
        metrics.append(
            UnitMetrics(
                "CourseUnit",
                unit,
                key.user_id,
                context,
                unit_done,
                len(unit_required),
                percentage(unit_done, len(unit_required)),
            )
        )
    audits = _transitions(
        state,
        merged,
        completed,
        started,
        status is EnrolmentStatus.COMPLETED,
        touched_contents,
        touched_units,
        course,
    )
    units_started, units_completed = state.units_started, state.units_completed
    for record in audits:
        if record.object_type is AuditObject.COURSE_UNIT:
            if record.action is AuditAction.START:
                units_started = units_started | {record.object_id}
            else:
                units_completed = units_completed | {record.object_id}
    # Compared field by field, not as whole states: this runs for every enrolment of every batch.
    progress_changed = (
        status is not state.status
        or done != state.progress
        or completion != state.completion_percentage
        or completed_on != state.completed_on
        or units_started is not state.units_started
        or units_completed is not state.units_completed
        or merged != state.content_status
    )
    new_state = EnrolmentState(
        key=key,
        content_status=merged,
        status=status,
        progress=done,
        completion_percentage=completion,
        completed_on=completed_on,
        last_read_content_id=last_read,
        last_read_content_status=last_read_status,
        last_updated=now if updates else state.last_updated,
        units_started=units_started,
        units_completed=units_completed,
        status_times=status_times,
    )
    return Aggregation(
        new_state,
        tuple(metrics),
        tuple(audits),
        status is EnrolmentStatus.COMPLETED and not was_complete,
        changed=progress_changed
        or last_read != state.last_read_content_id
        or last_read_status != state.last_read_content_status,
        progress_changed=progress_changed,
    )


def recompute(state: EnrolmentState, course: CourseView, now: datetime) -> Aggregation:
    """The enrolment against a course whose leaves changed (a republication): statuses are kept, progress
    and unit metrics follow the new leaves, a completed enrolment stays completed, and only the AUDIT
    events whose condition now holds for the first time are emitted (a unit new to the course whose
    leaves were all done, a course that the removal of its last open leaf completes)."""
    replayed = [ContentUpdate(content, status) for content, status in state.content_status.items()]
    result = aggregate(state, replayed, course, now, only_new=False)
    kept = replace(
        result.state,
        last_read_content_id=state.last_read_content_id,
        last_read_content_status=state.last_read_content_status,
    )
    return replace(result, state=kept)
