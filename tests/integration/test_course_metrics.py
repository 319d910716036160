"""The course metrics aggregator end to end, on every backend: progress, metrics, AUDIT exactly once."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from courseinfra.adapters.sql.tables import user_activity_agg
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.events import AuditEventEmitted, CertificateRequested, ProgressUpdated
from courseinfra.domain.job_requests import Outcome
from courseinfra.domain.progress import EnrolmentKey, EnrolmentStatus
from courseinfra.services import content, course_metrics, enrolments
from courseinfra.services.events.ingest import BadLine, ingest, read_lines
from courseinfra.services.events.ports import OutboxMessage
from courseinfra.services.messagebus import AUDIT_RELAY, prune_audit_log, relay_audit_log
from courseinfra.settings import Settings
from tests.support.builders import collection, leaf, progress_event, relayed_by_hand
from tests.support.cli import Cli
from tests.support.http import api_client

COURSE = collection(
    "course",
    collection("unit1", leaf("r1"), leaf("r2")),
    collection("unit2", leaf("r3"), leaf("r4", optional=True)),
    visibility="Default",
    channel="ch1",
)
KEY = EnrolmentKey("u1", "course", "b1")


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
    enrolment = enrolments.get_enrolment(KEY, app.uow_factory)
    assert dict(enrolment.state.content_status) == {"r1": 2, "r2": 1}
    assert (enrolment.state.progress, enrolment.state.completion_percentage) == (1, 33)
    assert enrolment.state.status is EnrolmentStatus.IN_PROGRESS
    metrics = {(m.activity_type, m.activity_id): m.agg for m in enrolments.activity(KEY, app.uow_factory)}
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
    [entry, *_] = enrolments.audit_events(app.uow_factory, user_id="u1")
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
    enrolment = enrolments.get_enrolment(KEY, app.uow_factory)
    assert enrolment.state.status is EnrolmentStatus.COMPLETED
    assert enrolment.state.completion_percentage == 100
    ledger = enrolments.audit_events(app.uow_factory, user_id="u1")
    assert len(ledger) == sum(audits.values())


def test_every_event_of_an_enrolment_in_one_batch_is_applied(app: App) -> None:
    setup_course(app)
    run(
        app, progress_event("u1", ("r1", 2)), progress_event("u1", ("r2", 2)), progress_event("u1", ("r3", 1))
    )
    state = enrolments.get_enrolment(KEY, app.uow_factory).state
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
    assert enrolments.get_enrolment(KEY, app.uow_factory).state.content_status == {}
    assert enrolments.audit_events(app.uow_factory) == []
    run(app, progress_event("u1", ("r1", 2)))
    assert set(published.audits().values()) == {1}
    assert len(enrolments.audit_events(app.uow_factory)) == 4


def test_a_crash_after_the_batch_commits_keeps_its_failures_and_counters_with_its_state(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's rejected events and counters are in the transaction of its state: a crash right
    after it (before ingest keeps what else it has) loses neither."""
    setup_course(app)
    from courseinfra.services.events import ingest as ingest_module

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(ingest_module, "keep_rejected", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run(app, progress_event("u1", ("r1", 2)), progress_event("stranger", ("r1", 2)))
    monkeypatch.undo()
    assert dict(enrolments.get_enrolment(KEY, app.uow_factory).state.content_status) == {"r1": 2}
    with app.uow_factory() as uow:
        assert [(e.source, e.code) for e in uow.failed_events.list()] == [("events:2", "enrolment-not-found")]
        counts = uow.counters.all()["course-metrics-aggregator"]
    assert (counts["total"], counts["success"], counts["failed"], counts["audit-events"]) == (2, 1, 1, 4)
    assert counts["cache-hits"] == 1  # the course's views, read before the batch's transaction


def test_a_failing_audit_consumer_stops_the_relay_in_order_and_the_next_relay_resumes(app: App) -> None:
    relayed_by_hand(app)
    setup_course(app)
    delivered: list[int] = []
    broken = {"id": 0}

    def consumer(message: OutboxMessage) -> None:
        if message.id == broken["id"]:
            raise ConnectionError("sink down")
        delivered.append(message.id)

    app.bus.subscribe(AuditEventEmitted.event_type, consumer)
    ingest([progress_event("u1", ("r1", 2), ("r2", 1))], "events", app.router, app.uow_factory)
    ids = [entry.id for entry in enrolments.audit_events(app.uow_factory)]
    assert len(ids) == 5
    broken["id"] = ids[2]
    assert relay_audit_log(app.uow_factory, app.bus, locks=app.locks) == 2
    assert delivered == ids[:2]
    with app.uow_factory() as uow:
        cursor = uow.cursors.get(AUDIT_RELAY)
    assert (cursor.position, cursor.attempts) == (ids[1], 1)
    assert cursor.last_error is not None
    assert f"AUDIT entry {ids[2]}" in cursor.last_error
    assert "sink down" in cursor.last_error
    broken["id"] = 0
    assert relay_audit_log(app.uow_factory, app.bus, locks=app.locks) == 3
    assert relay_audit_log(app.uow_factory, app.bus, locks=app.locks) == 0
    assert delivered == ids
    with app.uow_factory() as uow:
        cursor = uow.cursors.get(AUDIT_RELAY)
    assert (cursor.position, cursor.attempts, cursor.last_error) == (ids[-1], 0, None)


def test_relayed_audit_events_are_pruned_after_the_window_and_never_emitted_again(app: App) -> None:
    relayed_by_hand(app)
    setup_course(app)
    published = Published(app)
    lines = [progress_event("u1", ("r1", 2), ("r2", 1)), progress_event("u1", ("r3", 2))]
    run(app, *lines)
    relayed = len(enrolments.audit_events(app.uow_factory))
    assert relayed == sum(published.audits().values()) > 0
    ingest([progress_event("u1", ("r4", 1))], "late", app.router, app.uow_factory)  # not relayed yet
    with app.uow_factory() as uow:
        cursor = uow.cursors.get(AUDIT_RELAY).position
    later = datetime.now(UTC) + timedelta(days=2)
    # Old enough, but an entry not relayed is kept.
    assert prune_audit_log(app.uow_factory, cursor, later) == relayed
    pending = enrolments.audit_events(app.uow_factory)
    assert [(e.record.object_id, e.record.action.value) for e in pending] == [("r4", "start")]
    window = timedelta(days=1)
    assert (
        relay_audit_log(app.uow_factory, app.bus, locks=app.locks, retention=window, clock=lambda: later) == 1
    )
    assert enrolments.audit_events(app.uow_factory) == []
    # Every event again, and a recomputation, after the pruning: nothing is emitted again.
    before = published.audits()
    run(app, *lines, progress_event("u1", ("r4", 1)), progress_event("u1", ("r2", 2)))
    assert (
        course_metrics.recompute_enrolments(app.views, app.uow_factory, course_id="course").audit_events == 0
    )
    app.relay()
    after = published.audits()
    assert after - before == Counter(
        {
            ("Content", "r2", "complete"): 1,
            ("CourseUnit", "unit1", "complete"): 1,
            ("Course", "course", "complete"): 1,
        }
    )
    assert max(after.values()) == 1


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
    assert enrolments.get_enrolment(KEY, app.uow_factory).state.content_status == {"r1": 2}


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
    enrolment = enrolments.get_enrolment(EnrolmentKey("u2", "course", "b1"), app.uow_factory)
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
    assert enrolments.get_enrolment(KEY, app.uow_factory).state.completion_percentage == 66
    smaller = collection(
        "course", collection("unit1", leaf("r1"), leaf("r2")), visibility="Default", channel="ch1"
    )
    republish(app, smaller)
    republish(app, smaller)
    state = enrolments.get_enrolment(KEY, app.uow_factory).state
    assert (state.status, state.completion_percentage, state.progress) == (EnrolmentStatus.COMPLETED, 100, 2)
    assert published.audits()[("Course", "course", "complete")] == 1
    assert published.certificates() == 1
    assert dict(state.content_status) == {"r1": 2, "r2": 2}


def test_a_completed_enrolment_stays_completed_when_the_course_grows(app: App) -> None:
    setup_course(app)
    run(app, progress_event("u1", ("r1", 2), ("r2", 2), ("r3", 2)))
    completed_on = enrolments.get_enrolment(KEY, app.uow_factory).state.completed_on
    bigger = collection(
        "course",
        collection("unit1", leaf("r1"), leaf("r2"), leaf("r9")),
        collection("unit2", leaf("r3")),
        visibility="Default",
    )
    republish(app, bigger)
    state = enrolments.get_enrolment(KEY, app.uow_factory).state
    assert (state.status, state.completion_percentage, state.completed_on) == (
        EnrolmentStatus.COMPLETED,
        100,
        completed_on,
    )
    metrics = {(m.activity_type, m.activity_id): m.agg for m in enrolments.activity(KEY, app.uow_factory)}
    assert metrics[("CourseUnit", "unit1")] == {"completedCount": 2, "leafNodesCount": 3, "progress": 66}


def test_a_unit_that_a_republication_reopens_is_not_emitted_again_when_completed_again(app: App) -> None:
    setup_course(app)
    published = Published(app)
    run(app, progress_event("u1", ("r1", 2), ("r2", 2)))
    assert published.audits()[("CourseUnit", "unit1", "complete")] == 1
    wider = collection(
        "course",
        collection("unit1", leaf("r1"), leaf("r2"), leaf("r9")),
        collection("unit2", leaf("r3"), leaf("r4", optional=True)),
        visibility="Default",
        channel="ch1",
    )
    republish(app, wider)
    state = enrolments.get_enrolment(KEY, app.uow_factory).state
    assert (state.units_started, state.units_completed) == ({"unit1"}, {"unit1"})
    run(app, progress_event("u1", ("r9", 2)))
    run(app, progress_event("u1", ("r9", 2), ("r3", 2)))
    app.relay()
    audits = published.audits()
    assert audits[("CourseUnit", "unit1", "complete")] == 1
    assert audits[("CourseUnit", "unit1", "start")] == 1
    assert audits[("Content", "r9", "complete")] == 1
    assert audits[("Course", "course", "complete")] == 1
    assert max(audits.values()) == 1
    assert published.certificates() == 1
    metrics = {(m.activity_type, m.activity_id): m.agg for m in enrolments.activity(KEY, app.uow_factory)}
    assert metrics[("CourseUnit", "unit1")] == {"completedCount": 3, "leafNodesCount": 3, "progress": 100}


def test_events_that_waited_for_the_course_are_replayed_when_it_is_published(app: App) -> None:
    setup_course(app, publish=False)
    [rejected] = run(app, progress_event("u1", ("r1", 2))).rejected
    assert rejected.code == "course-not-published"
    content.publish("course", app.uow_factory())
    app.relay()
    state = enrolments.get_enrolment(KEY, app.uow_factory).state
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
    assert dict(enrolments.get_enrolment(KEY, app.uow_factory).state.content_status) == {"r1": 2}


# --- input the aggregator does not expect, and input it has seen ---


def test_lines_are_read_as_utf8_and_a_bad_or_long_line_comes_as_a_bad_line() -> None:
    long_line = b'{"pad": "' + b"x" * 5000 + b'"}\n'
    data = b'{"a": 1}\r\n' + b'{"b": "\xff\xfe"}\n' + long_line + b'{"c": 3}'
    lines = list(read_lines(io.BytesIO(data), max_bytes=2048))
    assert lines[0] == '{"a": 1}\r\n'
    assert isinstance(lines[1], BadLine)
    assert lines[1].code == "invalid-utf8"
    assert lines[1].text == '{"b": "\\xff\\xfe"}'
    assert "byte 7 (0xff)" in lines[1].reason
    assert isinstance(lines[2], BadLine)
    assert lines[2].code == "line-too-long"
    assert len(lines[2].text) == 2048  # the limit, at most 4096 bytes
    assert "a line of 5012 bytes, over the limit of 2048" in lines[2].reason
    assert lines[3] == '{"c": 3}'
    assert len(lines) == 4


def test_a_file_with_a_line_that_is_not_utf8_and_one_too_long_is_processed_and_both_are_kept(
    settings: Settings, app: App
) -> None:
    setup_course(app)
    path = settings.home / "events.jsonl"
    with path.open("wb") as out:
        out.write(progress_event("u1", ("r1", 2)).encode() + b"\n")
        out.write(b'{"eid": "BE_JOB_REQUEST", "edata": {"userId": "\xe9"}}\n')
        out.write(b'{"pad": "' + b"y" * 3000 + b'"}\n')
        out.write(progress_event("u1", ("r2", 2)).encode() + b"\n")
    done = Cli(settings)("ingest", str(path), env={"COURSEINFRA_INGEST_MAX_LINE_BYTES": "2048"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "events.jsonl:2: invalid-utf8" in done.stderr
    assert "events.jsonl:3: line-too-long" in done.stderr
    state = enrolments.get_enrolment(KEY, app.uow_factory).state
    assert dict(state.content_status) == {"r1": 2, "r2": 2}
    with app.uow_factory() as uow:
        kept = {event.source: event for event in uow.failed_events.list()}
    assert kept["events.jsonl:2"].code == "invalid-utf8"
    assert kept["events.jsonl:2"].payload == '{"eid": "BE_JOB_REQUEST", "edata": {"userId": "\\xe9"}}'
    assert kept["events.jsonl:3"].code == "line-too-long"
    assert kept["events.jsonl:3"].payload.startswith('{"pad": "yyy')


def test_the_api_keeps_a_line_that_is_not_utf8_and_processes_the_others(settings: Settings, app: App) -> None:
    setup_course(app)
    body = (
        progress_event("u1", ("r1", 2)).encode() + b"\n\xc3\x28\n" + progress_event("u1", ("r3", 1)).encode()
    )
    with api_client(app) as client:
        answer = client.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert answer.status_code == 200, answer.text
    assert [r["code"] for r in answer.json()["rejected"]] == ["invalid-utf8"]
    state = enrolments.get_enrolment(KEY, app.uow_factory).state
    assert dict(state.content_status) == {"r1": 2, "r3": 1}


def test_a_content_that_is_not_a_leaf_of_the_course_is_skipped_and_applied_once_it_is_one(app: App) -> None:
    setup_course(app)
    report = run(
        app,
        progress_event("u1", ("r1", 2), ("elsewhere", 2)),
        progress_event("u1", ("unit1", 2)),
        progress_event("u1", ("r2", 1)),
    )
    assert [(r.source, r.outcome, r.code) for r in report.rejected] == [
        ("events:1", "skipped", "content-not-in-course"),
        ("events:2", "skipped", "content-not-in-course"),
    ]
    assert "elsewhere" in report.rejected[0].reason
    assert "1 other content update(s) applied" in report.rejected[0].reason
    state = enrolments.get_enrolment(KEY, app.uow_factory).state
    assert dict(state.content_status) == {"r1": 2, "r2": 1}

    grown = collection(
        "course",
        collection("unit1", leaf("r1"), leaf("r2"), leaf("elsewhere")),
        collection("unit2", leaf("r3"), leaf("r4", optional=True)),
        visibility="Default",
        channel="ch1",
    )
    content.put_hierarchy(grown, app.uow_factory())
    content.publish("course", app.uow_factory())
    app.relay()
    state = enrolments.get_enrolment(KEY, app.uow_factory).state
    assert dict(state.content_status) == {"r1": 2, "r2": 1, "elsewhere": 2}  # replayed on republication
    with app.uow_factory() as uow:
        assert [e.code for e in uow.failed_events.list(outcomes=(Outcome.FAILED, Outcome.SKIPPED))] == [
            "content-not-in-course"
        ]


def test_ingesting_a_processed_file_again_writes_nothing_and_tells_nobody(app: App) -> None:
    setup_course(app)
    updates: list[OutboxMessage] = []
    app.bus.subscribe(ProgressUpdated.event_type, updates.append)
    lines = [
        progress_event("u1", ("r1", 1)),
        progress_event("u1", ("r1", 2), ("r3", 1)),
        progress_event("u1", ("r2", 2)),
    ]
    run(app, *lines)
    assert len(updates) == 1
    ledger = enrolments.audit_events(app.uow_factory, limit=100)
    state = enrolments.get_enrolment(KEY, app.uow_factory).state

    def metric_rows() -> list[tuple[str, str, str]]:
        with app.engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    user_activity_agg.c.activity_id,
                    user_activity_agg.c.agg,
                    user_activity_agg.c.agg_last_updated,
                )
            ).all()
        return sorted(
            (row[0], json.dumps(row[1], sort_keys=True), json.dumps(row[2], sort_keys=True)) for row in rows
        )

    metrics = metric_rows()
    assert {row[0] for row in metrics} == {"course", "unit1", "unit2"}
    run(app, *lines)
    assert len(updates) == 1
    assert enrolments.audit_events(app.uow_factory, limit=100) == ledger
    assert enrolments.get_enrolment(KEY, app.uow_factory).state == state
    assert metric_rows() == metrics  # not even their times were rewritten

    run(app, progress_event("u1", ("r1", 1)))  # a lower status than the one kept: only the last read moves
    assert len(updates) == 1
    after = enrolments.get_enrolment(KEY, app.uow_factory).state
    assert (after.last_read_content_id, after.last_read_content_status) == ("r1", 2)
    assert dict(after.content_status) == dict(state.content_status)
    assert metric_rows() == metrics


# --- recomputation on demand ---


def test_recompute_restores_progress_and_metrics_and_emits_only_what_was_never_emitted(
    settings: Settings, app: App
) -> None:
    setup_course(app)
    enrolments.enrol("u2", "b1", app.uow_factory())
    run(
        app,
        progress_event("u1", ("r1", 2), ("r2", 2), ("r3", 2)),
        progress_event("u2", ("r1", 2), ("r3", 1)),
    )
    expected = {
        user: (
            enrolments.get_enrolment(EnrolmentKey(user, "course", "b1"), app.uow_factory).state.progress,
            enrolments.activity(EnrolmentKey(user, "course", "b1"), app.uow_factory),
        )
        for user in ("u1", "u2")
    }
    ledger = {e.record for e in enrolments.audit_events(app.uow_factory, limit=100)}
    assert any(r.object_type.value == "Course" and r.action.value == "complete" for r in ledger)

    def damage() -> None:
        """Progress and metrics lost, and the course completion never recorded (as after a restore):
        the statuses say complete, the enrolment does not."""
        with app.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE user_enrolments SET progress = 0, completionpercentage = 0, completedon = NULL, "
                    "status = CASE WHEN status = 2 THEN 1 ELSE status END"
                )
            )
            connection.execute(user_activity_agg.delete())

    def restored() -> bool:
        return all(
            (
                enrolments.get_enrolment(EnrolmentKey(user, "course", "b1"), app.uow_factory).state.progress,
                enrolments.activity(EnrolmentKey(user, "course", "b1"), app.uow_factory),
            )
            == expected[user]
            for user in ("u1", "u2")
        )

    damage()
    done = course_metrics.recompute_enrolments(app.views, app.uow_factory, course_id="course")
    assert (done.enrolments, done.audit_events) == (2, 1)
    assert restored()
    assert {e.record for e in enrolments.audit_events(app.uow_factory, limit=100)} == ledger
    again = course_metrics.recompute_enrolments(app.views, app.uow_factory, batch_id="b1")
    assert (again.enrolments, again.audit_events) == (2, 0)  # nothing is emitted twice

    damage()
    cli = Cli(settings)
    one = cli("enrolments", "recompute", "--batch", "b1", "--user", "u1")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == {"enrolments": 1, "audit_events": 1}
    with api_client(app) as client:
        answer = client.post("/v1/enrolments/recompute", json={"batch_id": "b1"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"enrolments": 2, "audit_events": 0}
        assert client.post("/v1/enrolments/recompute", json={"user_id": "u1"}).status_code == 422
        missing = client.post("/v1/enrolments/recompute", json={"batch_id": "nope"})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "batch-not-found"
    assert restored()
    assert cli("enrolments", "recompute", "--user", "u1").returncode == 2
    stranger = cli("enrolments", "recompute", "--batch", "b1", "--user", "nobody")
    assert stranger.returncode == 1
    assert "Traceback" not in stranger.stderr
