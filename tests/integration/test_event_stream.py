"""Relayed events leave by the event stream, on every backend (the embedded file; Redis streams)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.events import AuditEventEmitted, CertificateRequested
from courseinfra.services import content, enrolments
from courseinfra.services.events.ingest import ingest
from courseinfra.services.events.ports import EventStream, OutboxMessage, StreamEntry
from courseinfra.services.messagebus import AUDIT_RELAY, relay_audit_log, relay_outbox
from courseinfra.settings import Settings
from tests.support.builders import collection, leaf
from tests.support.cli import Cli
from tests.support.http import api_client

COURSE = collection(
    "course", collection("unit1", leaf("r1"), leaf("r2")), visibility="Default", channel="ch1"
)


def completion(user: str) -> str:
    return json.dumps(
        {
            "eid": "BE_JOB_REQUEST",
            "edata": {
                "action": "batch-enrolment-update",
                "userId": user,
                "courseId": "course",
                "batchId": "b1",
                "contents": [{"contentId": "r1", "status": 2}, {"contentId": "r2", "status": 2}],
            },
        }
    )


@pytest.fixture
def stream_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"event_stream": "redis" if settings.redis_url else "embedded"})


def with_course_and_learners(app: App) -> App:
    content.put_hierarchy(COURSE, app.uow_factory())
    content.publish("course", app.uow_factory())
    app.relay()
    enrolments.create_batch(CourseBatch("b1", "course", "Batch 1", datetime.now(UTC)), app.uow_factory())
    for user in ("u1", "u2"):
        enrolments.enrol(user, "b1", app.uow_factory())
    return app


@pytest.fixture
def streaming_app(stream_settings: Settings) -> Iterator[App]:
    """Relayed by hand only: these tests look at what the relay does between a commit and the stream."""
    app = with_course_and_learners(bootstrap(stream_settings, publish_on_commit=False))
    yield app
    app.close()


def test_every_commit_relays_what_it_wrote_with_no_relay_by_hand(stream_settings: Settings) -> None:
    app = with_course_and_learners(bootstrap(stream_settings))
    try:
        assert app.stream is not None
        ingest([completion("u1")], "events", app.router, app.uow_factory)
        with app.uow_factory().reading() as uow:
            assert uow.outbox.pending() == []
            assert uow.cursors.get(AUDIT_RELAY).position == enrolments.audit_events(app.uow_factory)[-1].id
        assert len(everything(app.stream, AuditEventEmitted.event_type)) == 8
        assert [
            e.message.payload["user_id"] for e in everything(app.stream, CertificateRequested.event_type)
        ] == ["u1"]
        assert app.relay() == 0
    finally:
        app.close()


def everything(stream: EventStream, event_type: str) -> list[StreamEntry]:
    return stream.read(event_type, limit=1000)


def test_audit_events_and_certificate_requests_leave_by_the_stream_once(streaming_app: App) -> None:
    app = streaming_app
    assert app.stream is not None
    ingest([completion("u1"), completion("u2"), completion("u1")], "events", app.router, app.uow_factory)
    app.relay()
    app.relay()  # nothing new: nothing appended twice
    ledger = enrolments.audit_events(app.uow_factory)
    audits = everything(app.stream, AuditEventEmitted.event_type)
    assert [e.message.id for e in audits] == [entry.id for entry in ledger]
    assert [e.message.payload["telemetry"] for e in audits] == [entry.telemetry for entry in ledger]
    assert len(audits) == 2 * 8  # a learner: Course enrol, complete; unit start, complete; 2 x 2 contents
    certificates = everything(app.stream, CertificateRequested.event_type)
    assert sorted(e.message.payload["user_id"] for e in certificates) == ["u1", "u2"]


class RefusesOnce(EventStream):
    """The real stream, refusing the first append as a stream that is down would."""

    def __init__(self, inner: EventStream) -> None:
        self.inner = inner
        self.refused = False

    def append(self, messages: Sequence[OutboxMessage]) -> None:
        if not self.refused:
            self.refused = True
            raise ConnectionError("stream unavailable")
        self.inner.append(messages)

    def read(self, event_type: str, *, after: str | None = None, limit: int = 100) -> list[StreamEntry]:
        return self.inner.read(event_type, after=after, limit=limit)

    def lengths(self) -> dict[str, int]:
        return self.inner.lengths()

    def close(self) -> None:
        self.inner.close()


def test_a_refused_outbox_page_stays_pending_and_the_next_relay_appends_it_once(streaming_app: App) -> None:
    app = streaming_app
    real = app.stream
    assert real is not None
    ingest([completion("u1")], "events", app.router, app.uow_factory)
    with app.uow_factory() as uow:
        pending_before = [m.id for m in uow.outbox.pending()]
    assert pending_before
    app.stream = RefusesOnce(real)  # refuses the outbox page, then takes the AUDIT page
    assert app.relay() == 8
    with app.uow_factory() as uow:
        pending = uow.outbox.pending()
    assert [m.id for m in pending] == pending_before
    assert {m.attempts for m in pending} == {1}
    assert everything(real, CertificateRequested.event_type) == []
    assert app.relay() == len(pending_before)
    app.relay()
    with app.uow_factory() as uow:
        assert uow.outbox.pending() == []
    assert len(everything(real, CertificateRequested.event_type)) == 1
    audits = everything(real, AuditEventEmitted.event_type)
    assert len(audits) == len({e.message.id for e in audits}) == 8


def test_a_refused_audit_page_keeps_the_cursor_with_the_error(streaming_app: App) -> None:
    app = streaming_app
    assert app.stream is not None
    real = app.stream
    ingest([completion("u1")], "events", app.router, app.uow_factory)
    relay_outbox(app.uow_factory, app.bus, locks=app.locks, stream=real)
    assert relay_audit_log(app.uow_factory, app.bus, locks=app.locks, stream=RefusesOnce(real)) == 0
    with app.uow_factory() as uow:
        cursor = uow.cursors.get(AUDIT_RELAY)
    assert cursor.position == 0
    assert cursor.last_error is not None
    assert "event stream: ConnectionError: stream unavailable" in cursor.last_error
    assert relay_audit_log(app.uow_factory, app.bus, locks=app.locks, stream=real) == 8
    assert len(everything(real, AuditEventEmitted.event_type)) == 8


def test_operators_read_a_stream_from_the_cli_and_the_api(
    streaming_app: App, stream_settings: Settings
) -> None:
    app = streaming_app
    ingest([completion("u1")], "events", app.router, app.uow_factory)
    app.relay()
    cli = Cli(stream_settings)  # with the settings' stream
    first = cli("events", "read", AuditEventEmitted.event_type, "--limit", "4")
    assert first.returncode == 0, first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(lines) == 4
    assert "more may follow: --after" in first.stderr
    rest = cli("events", "read", AuditEventEmitted.event_type, "--after", lines[-1]["position"])
    assert len(rest.stdout.splitlines()) == 4
    off = cli("events", "read", AuditEventEmitted.event_type, env={"COURSEINFRA_EVENT_STREAM": "off"})
    assert off.returncode == 1
    assert "no-event-stream" in off.stderr

    with api_client(app) as client:
        page = client.get(f"/v1/streams/{AuditEventEmitted.event_type}", params={"limit": 2})
        assert page.status_code == 200
        assert [entry["id"] for entry in page.json()] == [line["id"] for line in lines[:2]]
        assert page.json()[0]["payload"]["telemetry"]["eid"] == "AUDIT"
        bad = client.get(f"/v1/streams/{AuditEventEmitted.event_type}", params={"after": "x-y"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid-stream-position"


def test_without_a_stream_reading_one_is_not_found(app: App) -> None:
    assert app.stream is None
    with api_client(app) as client:
        missing = client.get(f"/v1/streams/{AuditEventEmitted.event_type}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "no-event-stream"
