"""The course metrics aggregator (Sunbird's Activity Aggregate Updater): on ``batch-enrolment-update``
events, update each enrolment's progress, the course and unit metrics, and emit AUDIT events once.

A micro-batch is processed in four steps: read every request; read the course views it needs from the
relation cache (falling back to the hierarchy store, refilling the cache); read every enrolment in one
query; apply the pure :func:`~courseinfra.domain.progress.aggregate` and write states, metrics, the AUDIT
ledger and the outbox in one transaction. The ledger's unique key decides which AUDIT events are new:
a duplicate, a replay or a crash before commit never emits one twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
from courseinfra.domain.errors import InvalidHierarchy
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
from courseinfra.services.ingest import Router, RunCounters, keep_rejected, replay_failed
from courseinfra.services.jobs import EventResult, IncomingEvent, count_result
from courseinfra.services.ports import (
    ContentSummary,
    Enrolment,
    FailedEvent,
    JobCounters,
    OutboxMessage,
    RelationCache,
    UnitOfWork,
)

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
            with self.uow_factory() as uow:
                summaries = uow.hierarchies.summaries(cached)
                counters.inc(DB_READS)
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
                ancestors={
                    content: path for (owner, content), path in ancestors.items() if owner == course and path
                },
                channel=summary.channel if summary else None,
            )
        return views, missing

    def full(self, course: str, counters: JobCounters) -> CourseView | Rejection:
        """The whole course (every unit), computed from the stored hierarchy."""
        return self._from_store(course, counters, refill=False)

    def _from_store(
        self, course: str, counters: JobCounters, *, refill: bool = True
    ) -> CourseView | Rejection:
        with self.uow_factory() as uow:
            stored = uow.hierarchies.get(course)
            counters.inc(DB_READS)
        if stored is None or stored.published_at is None:
            return Rejection(
                Outcome.FAILED, "course-not-published", f"course {course} has no published hierarchy"
            )
        try:
            relations = compute_relations(parse_hierarchy(stored.hierarchy))
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
        views, unpublished = self.views.load(wanted, counters)

        now = self.clock()
        with self.uow_factory() as uow:
            emitted = self._apply(uow, by_enrolment, views, unpublished, results, now, counters)
            uow.commit(now)
        counters.inc(AUDIT_EVENTS, emitted)
        final = [result for result in results if result is not None]
        for result in final:
            count_result(counters, result)
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
        enrolments = uow.enrolments.get_many(list(by_enrolment))
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
            for position, _ in pairs:
                results[position] = (
                    EventResult.rejected(self.name, rejection)
                    if rejection
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
        if uow.enrolments.add(enrolment):
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
    """Write aggregated enrolments (with their course's channel) in ``uow``: states, metrics, the AUDIT
    records the ledger takes as new (the ledger is their outbox), the certificate requests of the
    course completions among them and one :class:`ProgressUpdated` event. Return how many AUDIT records
    were new."""
    states = [aggregation.state for aggregation, _ in aggregations]
    metrics = [metric for aggregation, _ in aggregations for metric in aggregation.metrics]
    candidates = [(record, channel) for aggregation, channel in aggregations for record in aggregation.audits]
    uow.enrolments.save_progress(states)
    uow.activity.upsert(metrics, now)
    emitted = uow.audits.add_new(candidates, now)
    uow.record(*_certificate_requests(emitted, states, now, counters))
    if states:
        uow.record(
            ProgressUpdated(
                batch_ids=sorted({state.key.batch_id for state in states}),
                user_ids=sorted({state.key.user_id for state in states}),
                occurred_at=now,
            )
        )
    counters.inc(DB_WRITES, 3 if states else 0)
    counters.inc(ENROLMENTS_UPDATED, len(states))
    return len(emitted)


def _certificate_requests(
    emitted: Sequence[AuditRecord], states: Sequence[EnrolmentState], now: datetime, counters: JobCounters
) -> list[Event]:
    """A course completion the ledger took as new also requests its certificate, in the same
    transaction: the request is as exactly-once as the AUDIT event."""
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
    recomputed = 0
    after_batch = ""
    while True:
        with uow_factory() as uow:
            batches = uow.batches.list(course_id=course_id, after=after_batch, limit=page)
        for batch in batches:
            after_user = ""
            while True:
                now = clock()
                with uow_factory() as uow:
                    enrolled = uow.enrolments.list_for_batch(
                        batch.batch_id, after_user=after_user, limit=page
                    )
                    started = [e for e in enrolled if e.state.content_status]
                    aggregations = [(recompute(e.state, view, now), view.channel) for e in started]
                    counters.inc(AUDIT_EVENTS, write_aggregations(uow, aggregations, now, counters))
                    uow.commit(now)
                recomputed += len(started)
                if len(enrolled) < page:
                    break
                after_user = enrolled[-1].key.user_id
        if len(batches) < page:
            return recomputed
        after_batch = batches[-1].batch_id


#: Failure codes that a new publication of the course can cure.
WAITING_FOR_PUBLICATION = frozenset({"course-not-published", "course-has-no-leaves", "invalid-hierarchy"})


def unpublished_course_failures(course_id: str, uow_factory: Callable[[], UnitOfWork]) -> list[FailedEvent]:
    """The kept events of this job that failed because ``course_id`` was not published yet, or was
    published without leaves or with an invalid hierarchy."""
    found: list[FailedEvent] = []
    after = 0
    while True:
        with uow_factory() as uow:
            page = uow.failed_events.list(job=JOB_NAME, after_id=after, limit=1000)
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
