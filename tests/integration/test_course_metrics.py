"""The course metrics aggregator end to end, on every backend: progress, metrics, AUDIT exactly once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.events import AuditEventEmitted, CertificateRequested
from courseinfra.domain.progress import EnrolmentKey, EnrolmentStatus
from courseinfra.services import content, enrolments
from courseinfra.services.ingest import ingest
from courseinfra.services.messagebus import AUDIT_RELAY, relay_audit_ledger
from courseinfra.services.ports import CourseBatch, OutboxMessage
from courseinfra.settings import Settings
from tests.helpers import collection, leaf

COURSE = collection(
    "course",
    collection("unit1", leaf("r1"), leaf("r2")),
    collection("unit2", leaf("r3"), leaf("r4", optional=True)),
    visibility="Default",
    channel="ch1",
)
KEY = EnrolmentKey("u1", "course", "b1")


def progress_event(user: str, *contents: tuple[str, int], course: str = "course", batch: str = "b1") -> str:
    return json.dumps(
        {
            "eid": "BE_JOB_REQUEST",
            "edata": {
                "action": "batch-enrolment-update",
                "userId": user,
                "courseId": course,
                "batchId": batch,
                "contents": [{"contentId": c, "status": s} for c, s in contents],
            },
        }
    )


def setup_course(app: App, *, publish: bool = True) -> None:
    content.put_hierarchy(COURSE, app.uow_factory())
    if publish:
        content.publish("course", app.uow_factory())
        app.relay()
    enrolments.create_batch(CourseBatch("b1", "course", "Batch 1", datetime.now(UTC)), app.uow_factory())
    enrolments.enrol("u1", "b1", app.uow_factory())


class Published:
    """Collects the events the outbox delivers."""

    def __init__(self, app: App) -> None:
        self.messages: list[OutboxMessage] = []
        app.bus.subscribe(AuditEventEmitted.event_type, self.messages.append)
        app.bus.subscribe(CertificateRequested.event_type, self.messages.append)

    def audits(self) -> Counter[tuple[str, str, str]]:
        return Counter(
            (
                m.payload["telemetry"]["object"]["type"],
                m.payload["telemetry"]["object"]["id"],
                m.payload["telemetry"]["edata"]["type"],
            )
            for m in self.messages
            if m.event_type == AuditEventEmitted.event_type
        )

    def certificates(self) -> int:
        return sum(m.event_type == CertificateRequested.event_type for m in self.messages)


def run(app: App, *lines: str) -> Any:
    report = ingest(lines, "events", app.router, app.uow_factory)
    app.relay()
    return report


def test_progress_metrics_and_audit_of_a_first_consumption(app: App) -> None:
    setup_course(app)
    published = Published(app)
    report = run(app, progress_event("u1", ("r1", 2), ("r2", 1)))
    assert report.rejected == []
    enrolment = enrolments.get_enrolment(KEY, app.uow_factory())
    assert dict(enrolment.state.content_status) == {"r1": 2, "r2": 1}
    assert (enrolment.state.progress, enrolment.state.completion_percentage) == (1, 33)
    assert enrolment.state.status is EnrolmentStatus.IN_PROGRESS
    metrics = {(m.activity_type, m.activity_id): m.agg for m in enrolments.activity(KEY, app.uow_factory())}
    assert metrics == {
        ("Course", "course"): {"completedCount": 1, "leafNodesCount": 3, "progress": 33},
        ("CourseUnit", "unit1"): {"completedCount": 1, "leafNodesCount": 2, "progress": 50},
    }
    assert published.audits() == Counter(
        {
            ("Course", "course", "enrol"): 1,
            ("CourseUnit", "unit1", "start"): 1,
            ("Content", "r1", "start"): 1,
            ("Content", "r1", "complete"): 1,
            ("Content", "r2", "start"): 1,
        }
    )
    [entry, *_] = enrolments.audit_events(app.uow_factory(), user_id="u1")
    telemetry = entry.telemetry
    assert telemetry["eid"] == "AUDIT"
    assert telemetry["ver"] == "3.0"
    assert telemetry["actor"] == {"id": "u1", "type": "User"}
    assert telemetry["context"]["channel"] == "ch1"
    assert telemetry["context"]["cdata"] == [
        {"type": "CourseBatch", "id": "b1"},
        {"type": "Course", "id": "course"},
    ]
    assert telemetry["object"]["rollup"] == {"l1": "course"}


def test_every_audit_event_is_emitted_once_under_duplicates_disorder_and_replays(app: App) -> None:
    setup_course(app)
    published = Published(app)
    lines = [
        progress_event("u1", ("r2", 2)),
        progress_event("u1", ("r1", 1)),
        progress_event("u1", ("r1", 2), ("r3", 2)),
    ]
    run(app, *lines, *lines)
    run(app, *reversed(lines))
    run(app, lines[0])
    audits = published.audits()
    assert set(audits.values()) == {1}, audits
    assert ("Course", "course", "complete") in audits
    assert published.certificates() == 1
    enrolment = enrolments.get_enrolment(KEY, app.uow_factory())
    assert enrolment.state.status is EnrolmentStatus.COMPLETED
    assert enrolment.state.completion_percentage == 100
    ledger = enrolments.audit_events(app.uow_factory(), user_id="u1")
    assert len(ledger) == sum(audits.values())


def test_every_event_of_an_enrolment_in_one_batch_is_applied(app: App) -> None:
    setup_course(app)
    run(
        app, progress_event("u1", ("r1", 2)), progress_event("u1", ("r2", 2)), progress_event("u1", ("r3", 1))
    )
    state = enrolments.get_enrolment(KEY, app.uow_factory()).state
    assert dict(state.content_status) == {"r1": 2, "r2": 2, "r3": 1}
    assert state.last_read_content_id == "r3"


def test_a_crash_before_commit_changes_nothing_and_the_rerun_emits_once(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_course(app)
    published = Published(app)
    from courseinfra.adapters.sql.uow import SqlUnitOfWork

    original = SqlUnitOfWork._commit
    calls = {"n": 0}

    def crash_once(self: SqlUnitOfWork) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("power cut")
        original(self)

    monkeypatch.setattr(SqlUnitOfWork, "_commit", crash_once)
    with pytest.raises(RuntimeError, match="power cut"):
        run(app, progress_event("u1", ("r1", 2)))
    monkeypatch.setattr(SqlUnitOfWork, "_commit", original)
    assert enrolments.get_enrolment(KEY, app.uow_factory()).state.content_status == {}
    assert enrolments.audit_events(app.uow_factory()) == []
    run(app, progress_event("u1", ("r1", 2)))
    assert set(published.audits().values()) == {1}
    assert len(enrolments.audit_events(app.uow_factory())) == 4


def test_a_failing_audit_consumer_stops_the_relay_in_order_and_the_next_relay_resumes(app: App) -> None:
    setup_course(app)
    delivered: list[int] = []
    broken = {"id": 0}

    def consumer(message: OutboxMessage) -> None:
        if message.id == broken["id"]:
            raise ConnectionError("sink down")
        delivered.append(message.id)

    app.bus.subscribe(AuditEventEmitted.event_type, consumer)
    ingest([progress_event("u1", ("r1", 2), ("r2", 1))], "events", app.router, app.uow_factory)
    ids = [entry.id for entry in enrolments.audit_events(app.uow_factory())]
    assert len(ids) == 5
    broken["id"] = ids[2]
    assert relay_audit_ledger(app.uow_factory, app.bus) == 2
    assert delivered == ids[:2]
    with app.uow_factory() as uow:
        cursor = uow.cursors.get(AUDIT_RELAY)
    assert (cursor.position, cursor.attempts) == (ids[1], 1)
    assert cursor.last_error is not None
    assert f"ledger entry {ids[2]}" in cursor.last_error
    assert "sink down" in cursor.last_error
    broken["id"] = 0
    assert relay_audit_ledger(app.uow_factory, app.bus) == 3
    assert relay_audit_ledger(app.uow_factory, app.bus) == 0
    assert delivered == ids
    with app.uow_factory() as uow:
        cursor = uow.cursors.get(AUDIT_RELAY)
    assert (cursor.position, cursor.attempts, cursor.last_error) == (ids[-1], 0, None)


def test_bad_events_are_kept_and_the_rest_is_processed(app: App) -> None:
    setup_course(app)
    report = run(
        app,
        progress_event("u1", ("r1", 2)),
        progress_event("stranger", ("r1", 2)),
        progress_event("u1", ("r1", 7)),
        progress_event("u1", ("r1", 2), course="no-such-course", batch="b9"),
        '{"eid":"BE_JOB_REQUEST","edata":{"action":"batch-enrolment-update","userId":"u1"}}',
    )
    assert [(r.source, r.code) for r in report.rejected] == [
        ("events:2", "enrolment-not-found"),
        ("events:3", "invalid-status"),
        ("events:4", "course-not-published"),
        ("events:5", "missing-field"),
    ]
    counts = report.counters["course-metrics-aggregator"].counts
    assert (counts["total"], counts["success"], counts["failed"]) == (5, 1, 4)
    assert enrolments.get_enrolment(KEY, app.uow_factory()).state.content_status == {"r1": 2}


def test_a_cache_miss_falls_back_to_the_store_and_refills_the_cache(app: App) -> None:
    setup_course(app)
    app.cache.clear()
    report = run(app, progress_event("u1", ("r1", 2)))
    assert report.rejected == []
    assert report.counters["course-metrics-aggregator"].counts["cache-misses"] == 1
    assert app.cache.get("course:leafnodes") is not None
    second = run(app, progress_event("u1", ("r2", 2)))
    assert second.counters["course-metrics-aggregator"].counts["cache-hits"] == 1


def test_unpublished_course_fails_with_its_reason(app: App) -> None:
    setup_course(app, publish=False)
    [rejected] = run(app, progress_event("u1", ("r1", 2))).rejected
    assert rejected.code == "course-not-published"


@pytest.fixture
def auto_enrol_app(settings: Settings) -> Iterator[App]:
    application = bootstrap(settings.model_copy(update={"aggregator_auto_enrol": True}))
    yield application
    application.close()


def test_auto_enrol_when_the_setting_allows_and_the_batch_exists(auto_enrol_app: App) -> None:
    app = auto_enrol_app
    setup_course(app)
    report = run(app, progress_event("u2", ("r1", 2)), progress_event("u3", ("r1", 2), batch="nope"))
    assert [(r.source, r.code) for r in report.rejected] == [("events:2", "batch-not-found")]
    enrolment = enrolments.get_enrolment(EnrolmentKey("u2", "course", "b1"), app.uow_factory())
    assert enrolment.added_by == "auto-enrol"
    assert enrolment.state.progress == 1


def republish(app: App, tree: dict[str, Any]) -> None:
    content.put_hierarchy(tree, app.uow_factory())
    content.publish(str(tree["identifier"]), app.uow_factory())
    app.relay()


def test_republishing_with_fewer_leaves_recomputes_and_completes_once(app: App) -> None:
    setup_course(app)
    published = Published(app)
    run(app, progress_event("u1", ("r1", 2), ("r2", 2)))
    assert enrolments.get_enrolment(KEY, app.uow_factory()).state.completion_percentage == 66
    smaller = collection(
        "course", collection("unit1", leaf("r1"), leaf("r2")), visibility="Default", channel="ch1"
    )
    republish(app, smaller)
    republish(app, smaller)
    state = enrolments.get_enrolment(KEY, app.uow_factory()).state
    assert (state.status, state.completion_percentage, state.progress) == (EnrolmentStatus.COMPLETED, 100, 2)
    assert published.audits()[("Course", "course", "complete")] == 1
    assert published.certificates() == 1
    assert dict(state.content_status) == {"r1": 2, "r2": 2}


def test_a_completed_enrolment_stays_completed_when_the_course_grows(app: App) -> None:
    setup_course(app)
    run(app, progress_event("u1", ("r1", 2), ("r2", 2), ("r3", 2)))
    completed_on = enrolments.get_enrolment(KEY, app.uow_factory()).state.completed_on
    bigger = collection(
        "course",
        collection("unit1", leaf("r1"), leaf("r2"), leaf("r9")),
        collection("unit2", leaf("r3")),
        visibility="Default",
    )
    republish(app, bigger)
    state = enrolments.get_enrolment(KEY, app.uow_factory()).state
    assert (state.status, state.completion_percentage, state.completed_on) == (
        EnrolmentStatus.COMPLETED,
        100,
        completed_on,
    )
    metrics = {(m.activity_type, m.activity_id): m.agg for m in enrolments.activity(KEY, app.uow_factory())}
    assert metrics[("CourseUnit", "unit1")] == {"completedCount": 2, "leafNodesCount": 3, "progress": 66}


def test_events_that_waited_for_the_course_are_replayed_when_it_is_published(app: App) -> None:
    setup_course(app, publish=False)
    [rejected] = run(app, progress_event("u1", ("r1", 2))).rejected
    assert rejected.code == "course-not-published"
    content.publish("course", app.uow_factory())
    app.relay()
    state = enrolments.get_enrolment(KEY, app.uow_factory()).state
    assert dict(state.content_status) == {"r1": 2}
    with app.uow_factory() as uow:
        assert uow.failed_events.list() == []
        [resolved] = uow.failed_events.list(include_resolved=True)
    assert resolved.resolved_at is not None


def test_a_batch_with_dates_out_of_order_is_refused(app: App) -> None:
    content.put_hierarchy(COURSE, app.uow_factory())
    start, end = datetime(2026, 12, 1).date(), datetime(2026, 11, 1).date()
    with pytest.raises(enrolments.InvalidBatch, match="ends"):
        enrolments.create_batch(
            CourseBatch("b1", "course", "B", datetime.now(UTC), start_date=start, end_date=end),
            app.uow_factory(),
        )
    with pytest.raises(enrolments.InvalidBatch, match="enrolment ends"):
        enrolments.create_batch(
            CourseBatch(
                "b1",
                "course",
                "B",
                datetime.now(UTC),
                end_date=start,
                enrollment_end_date=datetime(2027, 1, 1).date(),
            ),
            app.uow_factory(),
        )


def test_events_for_a_course_published_without_leaves_are_replayed_when_leaves_arrive(app: App) -> None:
    empty = collection("course", collection("unit1"), visibility="Default")
    content.put_hierarchy(empty, app.uow_factory())
    content.publish("course", app.uow_factory())
    app.relay()
    enrolments.create_batch(CourseBatch("b1", "course", "Batch 1", datetime.now(UTC)), app.uow_factory())
    enrolments.enrol("u1", "b1", app.uow_factory())
    app.cache.clear()
    [rejected] = run(app, progress_event("u1", ("r1", 2))).rejected
    assert rejected.code == "course-has-no-leaves"
    republish(app, COURSE)
    assert dict(enrolments.get_enrolment(KEY, app.uow_factory()).state.content_status) == {"r1": 2}
