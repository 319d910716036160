"""Legacy Group -> User Group through Open edX's event bus (ADR 0022), on every backend: the genuine
entries of ../shared/conformance/openedx-event-bus read off the bus (embedded, or Redis streams beside
PostgreSQL) by `consume`, applied to the user groups linked to the local legacy groups, each entry
acknowledged once applied or kept."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.adapters.openedx_bus.envelopes import EnvelopeReader, entry_line
from courseinfra.adapters.openedx_bus.streams import RedisOpenedxBus, SqliteOpenedxBus
from courseinfra.bootstrap import App
from courseinfra.domain.legacy import LegacyUnavailable
from courseinfra.domain.openedx_events import OpenedxMessage
from courseinfra.entrypoints.openedx_consumer import consume
from courseinfra.services.events.ingest import Router, ingest
from courseinfra.services.openedx.intake import OpenedxEventsJob
from courseinfra.services.openedx.ports import BusEntry, OpenedxBus
from courseinfra.settings import Settings
from tests.support.legacy_links import OPENEDX_COURSE as COURSE
from tests.support.legacy_links import link_course, members
from tests.support.servers import CONFORMANCE

pytestmark = pytest.mark.conformance_data

ENTRIES = CONFORMANCE.parent / "openedx-event-bus" / "entries.json"


def genuine_entries() -> dict[str, dict[str, Any]]:
    """The seven entries by what they carry: cohort-blue, cohort-red, enrollment-created, ..."""
    names = [
        "tracking-team",
        "tracking-cohort",
        "cohort-blue",
        "cohort-red",
        "enrollment-created",
        "enrollment-changed",
        "unenrollment",
    ]
    return dict(zip(names, json.loads(ENTRIES.read_text()), strict=True))


def wire_fields(entry: dict[str, Any]) -> dict[str, bytes]:
    fields = {k: v.encode() for k, v in entry["fields"].items() if v is not None}
    fields["event_data"] = base64.b64decode(entry["event_data_base64"])
    return fields


def bus_entry(entry: dict[str, Any]) -> BusEntry:
    return BusEntry(entry["stream"], entry["entry_id"], wire_fields(entry))


def send(bus: OpenedxBus, entry: dict[str, Any]) -> None:
    bus.send(entry["stream"], dict(wire_fields(entry)))


@pytest.fixture
def bus(app: App, settings: Settings) -> Iterator[OpenedxBus]:
    opened: OpenedxBus = (
        RedisOpenedxBus.from_url(settings.redis_url, "courseinfra", "test")
        if settings.redis_url
        else SqliteOpenedxBus(settings.home / "openedx-bus.sqlite3", "courseinfra", "test")
    )
    yield opened
    opened.close()


@pytest.fixture
def linked(app: App) -> dict[str, str]:
    return link_course(app)


def test_legacy_edits_reach_the_linked_groups_through_the_bus(
    app: App, bus: OpenedxBus, linked: dict[str, str]
) -> None:
    entries = genuine_entries()
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    streams = sorted({entry["stream"] for entry in entries.values()})
    # The LMS puts learner-1 in Blue; its event arrives.
    legacy.add_to_cohort(COURSE, linked["blue"], ["learner-1"])
    assert members(app, "blue") == {}
    send(bus, entries["cohort-blue"])
    report = consume(app, bus, streams, once=True)
    assert (report.entries, report.applied, report.not_applied) == (1, 1, 0)
    assert members(app, "blue") == {"learner-1": "legacy-event"}
    # The LMS moves them to Red (the event names Red only): they leave Blue and join Red.
    legacy.add_to_cohort(COURSE, linked["red"], ["learner-1"])
    send(bus, entries["cohort-red"])
    consume(app, bus, streams, once=True)
    assert (members(app, "blue"), members(app, "red")) == ({}, {"learner-1": "legacy-event"})
    # The Blue event again (a redelivery, same id): a no-op, even though it names Blue.
    send(bus, entries["cohort-blue"])
    again = consume(app, bus, streams, once=True)
    assert (again.entries, again.applied, again.not_applied) == (1, 0, 1)
    assert (members(app, "blue"), members(app, "red")) == ({}, {"learner-1": "legacy-event"})
    # learner-2's track becomes verified in the LMS; the enrolment events arrive, with the tracking logs
    # (their cohort and team are linked to no user group: nothing to pull).
    legacy.set_track(COURSE, ["learner-2"], "verified")
    for name in ("tracking-team", "tracking-cohort", "enrollment-created", "enrollment-changed"):
        send(bus, entries[name])
    report = consume(app, bus, streams, once=True)
    assert (report.entries, report.applied, report.not_applied) == (4, 4, 0)
    assert members(app, "verified") == {"learner-2": "legacy-event"}
    for stream in streams:
        assert bus.pending(stream) == 0
    with app.uow_factory().reading() as uow:
        counters = uow.counters.all()["openedx-events"]
    assert counters["applied"] == 6
    assert counters["skipped"] == 1


def test_an_entry_that_cannot_be_read_is_kept_with_its_reason_and_acknowledged(
    app: App, bus: OpenedxBus, linked: dict[str, str]
) -> None:
    entries = genuine_entries()
    broken = dict(entries["cohort-blue"])
    broken["event_data_base64"] = base64.b64encode(b"\x02not avro at all").decode()
    broken["fields"] = {**broken["fields"], "id": "0b7d8e44-0000-11f1-a77e-02fc00000001"}
    send(bus, broken)
    send(bus, entries["enrollment-created"])
    report = consume(
        app, bus, [entries["cohort-blue"]["stream"], entries["enrollment-created"]["stream"]], once=True
    )
    assert (report.entries, report.applied, report.not_applied) == (2, 1, 1)
    with app.uow_factory().reading() as uow:
        [kept] = uow.failed_events.list()
    assert (kept.job, kept.code) == ("openedx-events", "undecodable-event-data")
    assert json.loads(kept.payload)["id"] == "0b7d8e44-0000-11f1-a77e-02fc00000001"
    assert bus.pending(entries["cohort-blue"]["stream"]) == 0


def test_a_batch_is_applied_together_and_a_failing_event_alone_is_kept(app: App) -> None:
    """The job applies a batch in one call; when that fails, each event alone, so that only the event
    that fails is kept (with the legacy error's code) and the others are applied and recorded."""
    entries = genuine_entries()
    calls: list[list[str]] = []

    def apply(messages: Sequence[OpenedxMessage]) -> int:
        calls.append([m.metadata.id for m in messages])
        if any(getattr(m.event, "cohort_name", "") == "Red" for m in messages):
            raise LegacyUnavailable("the LMS answered 503")
        return len(messages)

    job = OpenedxEventsJob(app.uow_factory, EnvelopeReader(), apply)
    names = ("cohort-blue", "cohort-red", "enrollment-created")
    lines = [json.dumps(entry_line(bus_entry(entries[name]))) for name in names]
    report = ingest(lines, "test", Router([job]), app.uow_factory)
    ids = [entries[name]["fields"]["id"] for name in names]
    assert calls == [ids, ids[:1], ids[1:2], ids[2:]]
    assert [(r.code, r.job) for r in report.rejected] == [("legacy-unavailable", "openedx-events")]
    with app.uow_factory().reading() as uow:
        assert uow.openedx_events.applied(ids) == {ids[0], ids[2]}
        [kept] = uow.failed_events.list()
    assert json.loads(kept.payload)["id"] == ids[1]


def test_applied_ids_are_forgotten_after_the_retention(app: App) -> None:
    """Each batch forgets the ids applied longer ago than the retention: a redelivery after that is
    applied again (harmless: applies read the legacy state)."""
    entries = genuine_entries()
    now = [datetime(2026, 9, 3, tzinfo=UTC)]
    job = OpenedxEventsJob(
        app.uow_factory, EnvelopeReader(), len, lambda: now[0], retention=timedelta(days=7)
    )
    router = Router([job])

    def send(name: str) -> str:
        line = json.dumps(entry_line(bus_entry(entries[name])))
        report = ingest([line], "test", router, app.uow_factory)
        return "skipped" if report.rejected else "applied"

    assert send("cohort-blue") == "applied"
    now[0] += timedelta(days=6)
    assert (send("cohort-red"), send("cohort-blue")) == ("applied", "skipped")
    now[0] += timedelta(days=2)
    # This batch forgets Blue's id (8 days old), not Red's (2 days).
    assert send("enrollment-created") == "applied"
    assert (send("cohort-blue"), send("cohort-red")) == ("applied", "skipped")
