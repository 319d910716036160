"""The webhook of the Open edX intake (ADR 0022), for installations without an event bus: Open edX
events posted to ``POST /v1/openedx/events`` (one, or an array) are applied to the user groups linked to
the local legacy groups once by id; what cannot be read, and what is not an Open edX event, is kept in
failed events with its reason. On every backend."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.adapters.openedx_bus.envelopes import EnvelopeReader
from courseinfra.adapters.openedx_bus.wire import decode_entry
from courseinfra.bootstrap import App
from courseinfra.domain.legacy import LegacyCohortConfig
from courseinfra.domain.openedx_events import OpenedxMessage
from courseinfra.entrypoints.api import create_app
from courseinfra.entrypoints.api.routers.openedx import COHORT_EVENT_EXAMPLE
from tests.support import openedx_signals
from tests.support.builders import load_json
from tests.support.http import api_client, error_code, ok
from tests.support.legacy_links import OPENEDX_COURSE, cohort_criteria, link_course, members
from tests.support.servers import CONFORMANCE, REPO

COURSE = OPENEDX_COURSE
EXAMPLE_FILE = REPO / "examples" / "openedx-cohort-event.json"
ROUTE = "/v1/openedx/events"
JSON = {"content-type": "application/json"}
CLOUDEVENT = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


def cohort_event(name: str = "Blue", event_id: str | None = None) -> dict[str, Any]:
    """The genuine cohort membership change of the route's example (learner-1 joins Blue), naming
    cohort ``name``, with a new id unless ``event_id`` is given."""
    event = copy.deepcopy(COHORT_EVENT_EXAMPLE)
    event["data"]["cohort"]["name"] = name
    event["id"] = event_id or str(uuid.uuid1())
    return event


def body(events: Any) -> str:
    return json.dumps(events)


def mirrored_cohort() -> dict[str, Any]:
    """A cohort criterion whose link pulls what events report: the legacy system is its authority
    (ADR 0022), where links have one (under the default, user_group, an event is drift to undo)."""
    criteria = cohort_criteria()
    if "authority" in LegacyCohortConfig.model_fields:
        criteria["config"]["authority"] = "legacy"
    return criteria


@pytest.fixture
def cohorts(app: App) -> dict[str, str]:
    """The course, learner-1 enrolled, and the user groups blue and red linked to new cohorts of it,
    mirroring them; returns each group's cohort id."""
    return link_course(app, ("learner-1",), (("blue", mirrored_cohort()), ("red", mirrored_cohort())))


def rejected(answer: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(r["source"], r["job"], r["outcome"], r["code"]) for r in answer["rejected"]]


def test_the_example_is_what_openedx_events_sends() -> None:
    """The route's example reads as the entry edx-event-bus-redis writes for openedx-events' own
    COHORT_MEMBERSHIP_CHANGED signal with the same envelope reads."""
    envelope = {name: COHORT_EVENT_EXAMPLE[name] for name in ("source", "sourcehost")}
    entry = openedx_signals.redis_entry(
        COHORT_EVENT_EXAMPLE["type"],
        openedx_signals.cohort_changed("Blue"),
        id=uuid.UUID(COHORT_EVENT_EXAMPLE["id"]),
        time=datetime.fromisoformat(COHORT_EVENT_EXAMPLE["time"]),
        **envelope,
    )
    from_bus = decode_entry(entry)
    posted = EnvelopeReader().read(COHORT_EVENT_EXAMPLE)
    assert isinstance(from_bus, OpenedxMessage), from_bus
    assert posted == from_bus
    text = {name.decode(): value.decode() for name, value in entry.items() if name != b"event_data"}
    assert text == {name: value for name, value in COHORT_EVENT_EXAMPLE.items() if name != "data"}
    # The README's example file is the same event, the course's end (null) written out.
    in_file = load_json(EXAMPLE_FILE)
    assert in_file["data"]["cohort"]["course"]["end"] is None
    assert EnvelopeReader().read(in_file) == from_bus


@pytest.mark.conformance_data
def test_the_example_is_the_conformance_entry() -> None:
    entries = load_json(CONFORMANCE.parent / "openedx-event-bus" / "entries.json")
    [entry] = [e for e in entries if e["fields"]["id"] == COHORT_EVENT_EXAMPLE["id"]]
    fields = {name: value for name, value in entry["fields"].items() if name != "event_data"}
    decoded = copy.deepcopy(entry["decoded"])
    assert decoded["cohort"]["course"].pop("end") is None  # left out of the example: null
    assert {**fields, "data": decoded} == COHORT_EVENT_EXAMPLE


def test_a_posted_cohort_change_reaches_the_linked_groups_once(app: App, cohorts: dict[str, str]) -> None:
    client = api_client(app, role="ingest")
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    # The LMS puts learner-1 in Blue; its event is posted.
    legacy.add_to_cohort(COURSE, cohorts["blue"], ["learner-1"])
    answer = ok(client.post(ROUTE, content=body(COHORT_EVENT_EXAMPLE), headers=JSON))
    assert answer["rejected"] == []
    assert answer["jobs"]["openedx-events"] == {"total": 1, "success": 1, "applied": 1, "links-pulled": 2}
    assert members(app, "blue") == {"learner-1": "legacy-event"}
    # The same event again (the LMS retried its call): skipped, nothing changes.
    again = ok(client.post(ROUTE, content=body(COHORT_EVENT_EXAMPLE), headers=CLOUDEVENT))
    assert rejected(again) == [("openedx:webhook:1", "openedx-events", "skipped", "already-applied")]
    assert members(app, "blue") == {"learner-1": "legacy-event"}
    # The LMS moves them to Red; the event (a batch of one) names Red only: they leave Blue.
    legacy.add_to_cohort(COURSE, cohorts["red"], ["learner-1"])
    ok(client.post(ROUTE, content=body([cohort_event("Red")]), headers=BATCH))
    assert (members(app, "blue"), members(app, "red")) == ({}, {"learner-1": "legacy-event"})
    with app.uow_factory().reading() as uow:
        assert uow.failed_events.list() == []


def test_an_event_that_cannot_be_read_is_kept_with_its_reason_and_the_others_applied(
    app: App, cohorts: dict[str, str]
) -> None:
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    legacy.add_to_cohort(COURSE, cohorts["blue"], ["learner-1"])
    no_user = cohort_event()
    del no_user["data"]["cohort"]["user"]
    bad_id = {**cohort_event(), "id": "not-a-uuid"}
    batch = [no_user, 42, bad_id, COHORT_EVENT_EXAMPLE]
    answer = ok(api_client(app, role="ingest").post(ROUTE, content=body(batch), headers=BATCH))
    assert rejected(answer) == [
        ("openedx:webhook:1", "openedx-events", "failed", "missing-field"),
        ("openedx:webhook:2", "ingest", "failed", "not-an-object"),
        ("openedx:webhook:3", "openedx-events", "failed", "invalid-field"),
    ]
    assert "cohort.user" in answer["rejected"][0]["reason"]
    assert "metadata.id" in answer["rejected"][2]["reason"]
    assert answer["jobs"]["openedx-events"]["applied"] == 1
    assert members(app, "blue") == {"learner-1": "legacy-event"}
    with app.uow_factory().reading() as uow:
        kept = uow.failed_events.list()
    assert [(k.source, k.code) for k in kept] == [
        ("openedx:webhook:1", "missing-field"),
        ("openedx:webhook:2", "not-an-object"),
        ("openedx:webhook:3", "invalid-field"),
    ]
    assert json.loads(kept[0].payload) == no_user, "kept verbatim, to be replayed"


def test_an_event_that_is_not_open_edx_is_kept_as_failed_and_reaches_no_other_job(app: App) -> None:
    """A post-publish request (the relation cache job's, on /v1/events) and an event without a type are
    refused here, kept with the reason; no other job sees them."""
    post_publish = {
        "eid": "BE_JOB_REQUEST",
        "type": "BE_JOB_REQUEST",
        "edata": {"action": "post-publish-process", "identifier": "do_1", "mimeType": "x"},
    }
    untyped = {"id": str(uuid.uuid1()), "data": {}}
    answer = ok(
        api_client(app, role="ingest").post(ROUTE, content=body([post_publish, untyped]), headers=JSON)
    )
    assert rejected(answer) == [
        ("openedx:webhook:1", "openedx-webhook", "failed", "not-an-openedx-event"),
        ("openedx:webhook:2", "openedx-webhook", "failed", "not-an-openedx-event"),
    ]
    assert answer["rejected"][0]["reason"] == (
        'type "BE_JOB_REQUEST" is not an Open edX event type: this intake takes Open edX events only '
        "(type org.openedx.*)"
    )
    assert answer["rejected"][1]["reason"].startswith("the event has no type")
    assert set(answer["jobs"]) == {"openedx-webhook"}
    with app.uow_factory().reading() as uow:
        assert [k.code for k in uow.failed_events.list()] == ["not-an-openedx-event"] * 2
        assert "relation-cache" not in uow.counters.all()


def test_a_body_that_is_not_json_or_not_events_is_422(app: App) -> None:
    client = api_client(app, role="ingest")
    assert error_code(client.post(ROUTE, content=b"[{", headers=JSON), 422) == "invalid-body"
    assert error_code(client.post(ROUTE, content=b"", headers=JSON), 422) == "invalid-body"
    assert error_code(client.post(ROUTE, content=b'"org.openedx"', headers=JSON), 422) == "invalid-body"
    with app.uow_factory().reading() as uow:
        assert uow.failed_events.list() == []


def test_posting_needs_an_ingest_token(app: App) -> None:
    event = body(COHORT_EVENT_EXAMPLE)
    anonymous = TestClient(create_app(app))
    assert error_code(anonymous.post(ROUTE, content=event, headers=JSON), 401) == "unauthenticated"
    reader = api_client(app, role="reader")
    assert error_code(reader.post(ROUTE, content=event, headers=JSON), 403) == "forbidden"
    operator = api_client(app, role="operator")
    assert operator.post(ROUTE, content=event, headers=JSON).status_code == 200


def test_the_openapi_document_shows_the_webhook_with_a_genuine_example(app: App) -> None:
    operation = api_client(app).get("/openapi.json").json()["paths"][ROUTE]["post"]
    content_types = operation["requestBody"]["content"]
    assert set(content_types) == {
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    }
    assert content_types["application/json"]["example"] == COHORT_EVENT_EXAMPLE
    assert content_types["application/cloudevents-batch+json"]["example"] == [COHORT_EVENT_EXAMPLE]
    assert {"200", "401", "403", "413", "422"} <= set(operation["responses"])
