"""The course metrics aggregator (Sunbird's Activity Aggregate Updater): on ``batch-enrolment-update``
events, update each enrolment's progress, the course and unit metrics, and emit AUDIT events once.

A micro-batch is processed in four steps: read every request; read the course views it needs from the
relation cache (falling back to the hierarchy store, refilling the cache); read every enrolment in one
query, locked; apply the pure :func:`~courseinfra.domain.progress.aggregate` and write states, metrics,
the AUDIT log and the outbox in one transaction. An AUDIT event is a state transition written with the
state that records it, by one writer per enrolment at a time: a duplicate, a replay or a crash before
commit never emits one twice (docs/decisions/0018-audit-from-state-transitions.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from courseinfra.domain.aggregator import NOT_ENROLLED, plan_batch
from courseinfra.domain.cache_layout import (
    CacheLayout,
    ancestors_key,
    cache_entries,
    leaf_nodes_key,
    members_of,
    optional_nodes_key,
    path_of,
)
from courseinfra.domain.enrolments import CourseBatch, Enrolment
from courseinfra.domain.errors import DomainError, InvalidHierarchy
from courseinfra.domain.events import CertificateRequested, EnrolmentChanged, Event, ProgressUpdated
from courseinfra.domain.hierarchy import compute_relations, parse_hierarchy
from courseinfra.domain.job_requests import (
    ENROLMENT_UPDATE_ACTION,
    EnrolmentUpdateRequest,
    Outcome,
    Rejection,
    event_action,
    read_enrolment_update,
)
from courseinfra.domain.progress import (
    Aggregation,
    AuditAction,
    AuditObject,
    AuditRecord,
    CourseView,
    EnrolmentKey,
    EnrolmentState,
    recompute,
)
from courseinfra.services.cache.ports import RelationCache
from courseinfra.services.content.ports import ContentSummary
from courseinfra.services.enrolments import BatchNotFound, EnrolmentNotFound
from courseinfra.services.events.ingest import Router, RunCounters, failed_event, keep_rejected, replay_failed
from courseinfra.services.events.jobs import EventResult, IncomingEvent, count_result
from courseinfra.services.events.ports import JobCounters, OutboxMessage
from courseinfra.services.failed_events.ports import FailedEvent
from courseinfra.services.transactions import retrying
from courseinfra.services.unit_of_work import UnitOfWork

JOB_NAME = "course-metrics-aggregator"
AUDIT_EVENTS = "audit-events"
CERTIFICATE_REQUESTS = "certificate-requests"
DB_READS = "db-reads"
DB_WRITES = "db-writes"
CACHE_HITS = "cache-hits"
CACHE_MISSES = "cache-misses"
ENROLMENTS_UPDATED = "enrolments-updated"


@dataclass
class CourseViews:
    """Reads course views from the relation cache, falling back to the hierarchy store."""

    cache: RelationCache
    layout: CacheLayout
    uow_factory: Callable[[], UnitOfWork]

    def load(
        self, wanted: Mapping[str, set[str]], counters: JobCounters
    ) -> tuple[dict[str, CourseView], dict[str, Rejection]]:
        """Views of the courses in ``wanted`` (course id to the content ids the batch touches), and a
        rejection for each course that was never published."""
        views: dict[str, CourseView] = {}
        missing: dict[str, Rejection] = {}
        layout = self.layout
        heads = self.cache.get_many(
            [
                key
                for course in wanted
                for key in (
                    leaf_nodes_key(course, course, layout),
                    optional_nodes_key(course, course, layout),
                )
            ]
        )
        cached = [course for course in wanted if heads[leaf_nodes_key(course, course, layout)] is not None]
        counters.inc(CACHE_HITS, len(cached))
        for course in wanted:
            if course not in cached:
                counters.inc(CACHE_MISSES)
                view = self._from_store(course, counters)
                if isinstance(view, Rejection):
                    missing[course] = view
                else:
                    views[course] = view
        ancestor_keys = {
            (course, content): ancestors_key(content, course)
            for course in cached
            for content in wanted[course]
        }
        ancestor_values = self.cache.get_many(list(ancestor_keys.values()))
        ancestors = {pair: path_of(ancestor_values[key]) for pair, key in ancestor_keys.items()}
        units = {(course, unit) for (course, _), path in ancestors.items() for unit in path if unit != course}
        unit_keys = {
            pair: (leaf_nodes_key(pair[1], pair[0], layout), optional_nodes_key(pair[1], pair[0], layout))
            for pair in units
        }
        unit_values = self.cache.get_many([key for keys in unit_keys.values() for key in keys])
        summaries: dict[str, ContentSummary] = {}
        if cached:
            with self.uow_factory().reading() as uow:
                summaries = uow.hierarchies.summaries(cached)
                counters.inc(DB_READS)
        by_course: dict[str, dict[str, tuple[str, ...]]] = {}
        for (owner, content_id), path in ancestors.items():
            if path:
                by_course.setdefault(owner, {})[content_id] = path
        for course in cached:
            summary = summaries.get(course)
            leaf_nodes = {course: members_of(heads[leaf_nodes_key(course, course, layout)])}
            optional = {course: members_of(heads[optional_nodes_key(course, course, layout)])}
            for (owner, unit), (leaves_key, optional_key) in unit_keys.items():
                if owner == course:
                    leaf_nodes[unit] = members_of(unit_values[leaves_key])
                    optional[unit] = members_of(unit_values[optional_key])
            views[course] = CourseView(
                course_id=course,
                leaf_nodes=leaf_nodes,
                optional_nodes=optional,
                ancestors=by_course.get(course, {}),
                channel=summary.channel if summary else None,
            )
        return views, missing

    def current(self, course: str, counters: JobCounters) -> CourseView | Rejection:
        """The whole course as the relation cache has it now: every leaf with its ancestors and every
        unit above them (computed from the stored hierarchy, and refilled, where the cache lacks it)."""
        head = self.cache.get(leaf_nodes_key(course, course, self.layout))
        if head is None:
            return self._from_store(course, counters)
        views, missing = self.load({course: set(members_of(head))}, counters)
        return views.get(course) or missing[course]

    def full(self, course: str, counters: JobCounters) -> CourseView | Rejection:
        """The whole course (every unit), computed from the stored hierarchy."""
        return self._from_store(course, counters, refill=False)

    def _from_store(
        self, course: str, counters: JobCounters, *, refill: bool = True
    ) -> CourseView | Rejection:
        with self.uow_factory().reading() as uow:
            stored = uow.hierarchies.get(course)
            counters.inc(DB_READS)
        if stored is None or stored.published_at is None:
            return Rejection(
                Outcome.FAILED, "course-not-published", f"course {course} has no published hierarchy"
            )
        try:
            relations = compute_relations(parse_hierarchy(stored.hierarchy, max_depth=None))
        except InvalidHierarchy as error:
            return Rejection(Outcome.FAILED, error.code, f"course {course}: {error}")
        if not relations.leaf_nodes.get(course):
            return Rejection(Outcome.FAILED, "course-has-no-leaves", f"course {course} has no leaf nodes")
        if refill:
            # Refill the cache, so that the next batch reads it there.
            self.cache.replace_owned(course, cache_entries(relations, self.layout))
        channel = stored.hierarchy.get("channel")
        return CourseView(
            course_id=course,
            leaf_nodes=relations.leaf_nodes,
            optional_nodes=relations.optional_nodes,
            ancestors=relations.ancestors,
            channel=channel if isinstance(channel, str) else None,
        )


@dataclass
class CourseMetricsJob:
    uow_factory: Callable[[], UnitOfWork]
    views: CourseViews
    auto_enrol: bool = False
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    name: str = JOB_NAME

    def accepts(self, event: Mapping[str, Any]) -> bool:
        return event_action(event) == ENROLMENT_UPDATE_ACTION

    def process(self, events: Sequence[IncomingEvent], counters: JobCounters) -> list[EventResult]:
        results: list[EventResult | None] = [None] * len(events)
        by_enrolment: dict[EnrolmentKey, list[tuple[int, EnrolmentUpdateRequest]]] = {}
        for position, incoming in enumerate(events):
            request = read_enrolment_update(incoming.event)
            if isinstance(request, Rejection):
                results[position] = EventResult.rejected(self.name, request)
            else:
                by_enrolment.setdefault(request.key, []).append((position, request))

        wanted: dict[str, set[str]] = {}
        for key, requests in by_enrolment.items():
            contents = wanted.setdefault(key.course_id, set())
            for _, request in requests:
                contents.update(update.content_id for update in request.contents)
        loading = JobCounters()  # cache hits and reads: stored with the batch's other counters
        views, unpublished = self.views.load(wanted, loading)

        now = self.clock()

        def apply() -> tuple[list[EventResult], JobCounters]:
            # A run that lost to a concurrent writer was rolled back whole: it starts again from the
            # results it was given. The batch's counters and its rejected events are stored in the
            # transaction of its state, so that a crash never separates them.
            applied_results, applied = list(results), JobCounters(dict(loading.counts))
            with self.uow_factory() as uow:
                emitted = self._apply(uow, by_enrolment, views, unpublished, applied_results, now, applied)
                applied.inc(AUDIT_EVENTS, emitted)
                final = self._keep_rejected(uow, events, applied_results, now)
                for result in final:
                    count_result(applied, result)
                uow.counters.add(self.name, applied.counts)
                uow.commit(now)
            return final, applied

        final, applied = retrying(apply)
        for name, value in applied:
            counters.inc(name, value)
        counters.stored = True
        return final

    def _keep_rejected(
        self,
        uow: UnitOfWork,
        events: Sequence[IncomingEvent],
        results: Sequence[EventResult | None],
        now: datetime,
    ) -> list[EventResult]:
        """Store the rejected events of the batch (not those replayed: their entries are the replay's);
        return every result, those stored marked ``kept``."""
        final: list[EventResult] = []
        for incoming, result in zip(events, results, strict=True):
            assert result is not None
            if result.outcome is Outcome.PROCESSED or incoming.replayed:
                final.append(result)
            else:
                uow.failed_events.add(failed_event(incoming.payload, incoming.source, result), now)
                final.append(replace(result, kept=True))
        return final

    def _apply(
        self,
        uow: UnitOfWork,
        by_enrolment: Mapping[EnrolmentKey, list[tuple[int, EnrolmentUpdateRequest]]],
        views: Mapping[str, CourseView],
        unpublished: Mapping[str, Rejection],
        results: list[EventResult | None],
        now: datetime,
        counters: JobCounters,
    ) -> int:
        """Read the batch's enrolments, plan it (pure), write the plan; return the AUDIT events emitted."""
        enrolments = uow.enrolments.get_many(list(by_enrolment), for_update=True)
        counters.inc(DB_READS)
        states = {key: enrolment.state for key, enrolment in enrolments.items()}
        enrol_problems: dict[EnrolmentKey, Rejection] = {}
        for key in by_enrolment:
            if key not in states and key.course_id in views:
                enrolment, problem = self._enrol(uow, key, now)
                if enrolment is not None:
                    states[key] = enrolment.state
                elif problem is not None:
                    enrol_problems[key] = problem
        requests = {key: [request for _, request in pairs] for key, pairs in by_enrolment.items()}
        plan = plan_batch(requests, states, views, unpublished, now)
        for key, pairs in by_enrolment.items():
            rejection = enrol_problems.get(key) or plan.rejected.get(key)
            skipped = plan.partly_skipped.get(key, {})
            for index, (position, _) in enumerate(pairs):
                outcome = rejection or skipped.get(index)
                results[position] = (
                    EventResult.rejected(self.name, outcome)
                    if outcome
                    else EventResult(self.name, Outcome.PROCESSED)
                )
        return write_aggregations(uow, plan.applied, now, counters)

    def _enrol(
        self, uow: UnitOfWork, key: EnrolmentKey, now: datetime
    ) -> tuple[Enrolment | None, Rejection | None]:
        """Enrol a learner whose progress arrives before the enrolment, where the setting allows it."""
        if not self.auto_enrol:
            return None, NOT_ENROLLED
        batch = uow.batches.get(key.batch_id)
        if batch is None or batch.course_id != key.course_id:
            return None, Rejection(
                Outcome.FAILED,
                "batch-not-found",
                f"batch {key.batch_id} of course {key.course_id} does not exist",
            )
        enrolment = Enrolment(
            EnrolmentState(key=key, last_updated=now), active=True, enrolled_date=now, added_by="auto-enrol"
        )
        if not uow.enrolments.add(enrolment):
            # Another writer enrolled the learner since the read: take its row, locked, as it is.
            return uow.enrolments.get_many([key], for_update=True)[key], None
        uow.record(
            EnrolmentChanged(
                user_id=key.user_id,
                course_id=key.course_id,
                batch_id=key.batch_id,
                active=True,
                mode=enrolment.mode,
                occurred_at=now,
            )
        )
        return enrolment, None


def write_aggregations(
    uow: UnitOfWork,
    aggregations: Sequence[tuple[Aggregation, str | None]],
    now: datetime,
    counters: JobCounters,
) -> int:
    """Write aggregated enrolments (with their course's channel) in ``uow``: the states that changed,
    the metrics, their AUDIT events (the log is their outbox), the certificate requests of the course
    completions among them and one :class:`ProgressUpdated` event for the enrolments whose progress
    changed (a repeated event changes none). Return how many AUDIT events were emitted."""
    states = [aggregation.state for aggregation, _ in aggregations]
    changed = [aggregation.state for aggregation, _ in aggregations if aggregation.changed]
    progressed = [aggregation.state for aggregation, _ in aggregations if aggregation.progress_changed]
    metrics = [metric for aggregation, _ in aggregations for metric in aggregation.metrics]
    emitted = [(record, channel) for aggregation, channel in aggregations for record in aggregation.audits]
    uow.enrolments.save_progress(changed)
    uow.activity.upsert(metrics, now)
    uow.record_audit(emitted, now)
    uow.record(*_certificate_requests([record for record, _ in emitted], states, now, counters))
    if progressed:
        uow.record(
            ProgressUpdated(
                batch_ids=sorted({state.key.batch_id for state in progressed}),
                user_ids=sorted({state.key.user_id for state in progressed}),
                occurred_at=now,
            )
        )
    counters.inc(DB_WRITES, bool(changed) + bool(metrics) + bool(emitted))
    counters.inc(ENROLMENTS_UPDATED, len(changed))
    return len(emitted)


def _certificate_requests(
    emitted: Sequence[AuditRecord], states: Sequence[EnrolmentState], now: datetime, counters: JobCounters
) -> list[Event]:
    """A course completion emitted also requests its certificate, in the same transaction: the request
    is as exactly-once as the AUDIT event."""
    completed_on = {state.key: state.completed_on for state in states}
    events: list[Event] = []
    for record in emitted:
        if record.object_type is AuditObject.COURSE and record.action is AuditAction.COMPLETE:
            done = completed_on.get(record.enrolment) or now
            events.append(
                CertificateRequested(
                    user_id=record.enrolment.user_id,
                    course_id=record.enrolment.course_id,
                    batch_id=record.enrolment.batch_id,
                    completed_on=done.isoformat(),
                    occurred_at=now,
                )
            )
            counters.inc(CERTIFICATE_REQUESTS)
    return events


def recompute_course(
    course_id: str,
    uow_factory: Callable[[], UnitOfWork],
    views: CourseViews,
    counters: JobCounters,
    *,
    page: int = 1000,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Recompute every enrolment of a republished course, a page of learners per transaction; return how
    many enrolments were recomputed. A course that cannot be read is left alone (its events fail)."""
    view = views.full(course_id, counters)
    if isinstance(view, Rejection):
        return 0
    return sum(
        _recompute_batch(uow_factory, batch.batch_id, view, counters, page=page, clock=clock)
        for batch in _batches_of(course_id, uow_factory, page)
    )


def _recompute_page(
    uow_factory: Callable[[], UnitOfWork],
    batch_id: str,
    after_user: str,
    page: int,
    view: CourseView,
    now: datetime,
    counters: JobCounters,
) -> tuple[list[Enrolment], list[Enrolment]]:
    """Recompute one page of a batch's enrolments (locked) in one transaction; return the page and
    its started enrolments. Counters are added only when it commits."""
    with uow_factory() as uow:
        enrolled = uow.enrolments.list_for_batch(batch_id, after_user=after_user, limit=page, for_update=True)
        started, applied = _write_recomputed(uow, enrolled, view, now)
        uow.commit(now)
    for name, value in applied:
        counters.inc(name, value)
    return enrolled, started


def _write_recomputed(
    uow: UnitOfWork, enrolled: Sequence[Enrolment], view: CourseView, now: datetime
) -> tuple[list[Enrolment], JobCounters]:
    """Recompute and write the started ones among ``enrolled``; return them and the counts."""
    applied = JobCounters()
    started = [e for e in enrolled if e.state.content_status]
    aggregations = [(recompute(e.state, view, now), view.channel) for e in started]
    applied.inc(AUDIT_EVENTS, write_aggregations(uow, aggregations, now, applied))
    return started, applied


class CourseNotRecomputable(DomainError):
    """A recomputation was asked of a course that has no published hierarchy with leaves."""

    code = "course-not-published"


@dataclass(frozen=True, slots=True)
class Recomputed:
    """What an on-demand recomputation did: enrolments re-derived and AUDIT events emitted by it."""

    enrolments: int
    audit_events: int


def recompute_enrolments(
    views: CourseViews,
    uow_factory: Callable[[], UnitOfWork],
    *,
    course_id: str | None = None,
    batch_id: str | None = None,
    user_id: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Recomputed:
    """Re-derive progress and metrics of one enrolment (``user_id`` and ``batch_id``), of a batch, or of
    every batch of a course, from the stored statuses and the course as the relation cache has it now;
    emit only the AUDIT events not emitted before. A page of a batch at a time, each in one transaction
    under the enrolments' locks, so that it runs beside the aggregator. What was emitted before is read
    from the enrolments' states (their statuses and unit marks), not from the AUDIT log, which may have
    been pruned."""
    if (course_id is None) == (batch_id is None) or (user_id is not None and batch_id is None):
        raise ValueError("give a course, a batch, or a batch and a user")
    counters = JobCounters()
    if batch_id is not None:
        with uow_factory() as uow:
            batch = uow.batches.get(batch_id)
        if batch is None:
            raise BatchNotFound(f"batch {batch_id} does not exist")
        course_id, batches = batch.course_id, [batch_id]
    else:
        assert course_id is not None
        batches = [b.batch_id for b in _batches_of(course_id, uow_factory)]
    view = views.current(course_id, counters)
    if isinstance(view, Rejection):
        raise CourseNotRecomputable(view.reason, code=view.code)
    if user_id is not None:
        key = EnrolmentKey(user_id, course_id, batches[0])
        done = retrying(partial(_recompute_one, uow_factory, key, view, clock(), counters))
        if not done:
            raise EnrolmentNotFound(f"{user_id} is not enrolled in batch {batches[0]}")
        return Recomputed(1, counters.counts.get(AUDIT_EVENTS, 0))
    recomputed = sum(_recompute_batch(uow_factory, batch, view, counters, clock=clock) for batch in batches)
    return Recomputed(recomputed, counters.counts.get(AUDIT_EVENTS, 0))


def _batches_of(course_id: str, uow_factory: Callable[[], UnitOfWork], page: int = 1000) -> list[CourseBatch]:
    found: list[CourseBatch] = []
    after = ""
    while True:
        with uow_factory() as uow:
            batches = uow.batches.list(course_id=course_id, after=after, limit=page)
        found += batches
        if len(batches) < page:
            return found
        after = batches[-1].batch_id


def _recompute_batch(
    uow_factory: Callable[[], UnitOfWork],
    batch_id: str,
    view: CourseView,
    counters: JobCounters,
    *,
    page: int = 1000,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    recomputed = 0
    after_user = ""
    while True:
        enrolled, started = retrying(
            partial(_recompute_page, uow_factory, batch_id, after_user, page, view, clock(), counters)
        )
        recomputed += len(started)
        if len(enrolled) < page:
            return recomputed
        after_user = enrolled[-1].key.user_id


def _recompute_one(
    uow_factory: Callable[[], UnitOfWork],
    key: EnrolmentKey,
    view: CourseView,
    now: datetime,
    counters: JobCounters,
) -> bool:
    with uow_factory() as uow:
        enrolment = uow.enrolments.get_many([key], for_update=True).get(key)
        if enrolment is None:
            return False
        _, applied = _write_recomputed(uow, [enrolment], view, now)  # nothing if not started
        uow.commit(now)
    for name, value in applied:
        counters.inc(name, value)
    return True


#: Failure codes that a new publication of the course can cure.
WAITING_FOR_PUBLICATION = frozenset(
    {"course-not-published", "course-has-no-leaves", "invalid-hierarchy", "content-not-in-course"}
)


def unpublished_course_failures(course_id: str, uow_factory: Callable[[], UnitOfWork]) -> list[FailedEvent]:
    """The kept events of this job that failed because ``course_id`` was not published yet, or was
    published without leaves or with an invalid hierarchy, and those skipped for contents that were not
    its leaves."""
    found: list[FailedEvent] = []
    after = 0
    while True:
        with uow_factory() as uow:
            page = uow.failed_events.list(
                job=JOB_NAME, outcomes=(Outcome.FAILED, Outcome.SKIPPED), after_id=after, limit=1000
            )
        for event in page:
            if event.code in WAITING_FOR_PUBLICATION and _course_of(event.payload) == course_id:
                found.append(event)
        if len(page) < 1000:
            return found
        after = page[-1].id


def _course_of(payload: str) -> str | None:
    try:
        edata = orjson.loads(payload).get("edata", {})
    except (orjson.JSONDecodeError, AttributeError):
        return None
    course = edata.get("courseId") if isinstance(edata, dict) else None
    return course if isinstance(course, str) else None


def relation_cache_updated_handler(
    router: Router, uow_factory: Callable[[], UnitOfWork], views: CourseViews
) -> Callable[[OutboxMessage], None]:
    """When a course's relation cache is rebuilt (it was published again): recompute its enrolments, then
    replay the progress events that failed because it was not published yet."""

    def handle(message: OutboxMessage) -> None:
        course_id = message.key
        counters = RunCounters()
        recompute_course(course_id, uow_factory, views, counters.job(JOB_NAME))
        keep_rejected([], counters, uow_factory, datetime.now(UTC))
        waiting = unpublished_course_failures(course_id, uow_factory)
        if waiting:
            replay_failed(waiting, router, uow_factory)

    return handle
