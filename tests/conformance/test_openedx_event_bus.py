"""The seven Open edX event bus entries written by edx-event-bus-redis from openedx-events signals
(shared/conformance/openedx-event-bus/README.md) decode to exactly what openedx-events' own deserializer
gives, and are written back byte for byte; the Avro schemas are those openedx-events generates."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest

from courseinfra.adapters.openedx_bus.schemas import SCHEMAS
from courseinfra.adapters.openedx_bus.wire import decode_entry, encode_entry
from courseinfra.domain.job_requests import Rejection
from courseinfra.domain.openedx_events import (
    CohortMembershipChanged,
    EnrollmentEvent,
    LmsCourse,
    LmsUser,
    OpenedxMessage,
    TrackingLogEmitted,
)
from courseinfra.domain.openedx_tracking_logs import (
    CohortUserAdded,
    TeamLearnerAdded,
    read_tracking_log,
)
from tests.support.builders import load_json
from tests.support.servers import CONFORMANCE

pytestmark = pytest.mark.conformance_data

BUS = CONFORMANCE.parent / "openedx-event-bus"
#: The entries in the file's order, named.
ENTRY_NAMES = [
    "tracking-team-learner-added",
    "tracking-cohort-user-added",
    "cohort-blue",
    "cohort-red",
    "enrollment-created",
    "enrollment-changed",
    "unenrollment-completed",
]


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = load_json(BUS / "entries.json")
    return loaded


def wire_fields(entry: dict[str, Any]) -> dict[bytes, bytes]:
    """The entry as redis-py's XRANGE gives it: bytes keys and values, ``event_data`` the Avro bytes."""
    fields = {name.encode(): value.encode() for name, value in entry["fields"].items() if value is not None}
    fields[b"event_data"] = base64.b64decode(entry["event_data_base64"])
    return fields


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def assert_user(user: LmsUser, decoded: dict[str, Any]) -> None:
    assert user == LmsUser(
        id=decoded["id"],
        username=decoded["pii"]["username"],
        email=decoded["pii"]["email"],
        name=decoded["pii"]["name"],
        is_active=decoded["is_active"],
    )


def assert_course(course: LmsCourse, decoded: dict[str, Any]) -> None:
    assert course == LmsCourse(
        course_key=decoded["course_key"],
        display_name=decoded["display_name"],
        start=when(decoded["start"]),
        end=when(decoded["end"]),
    )


def assert_event_is(message: OpenedxMessage, decoded: dict[str, Any]) -> None:
    """The typed event's fields are the decoded signal data's values (datetimes as datetimes, a
    tracking log's JSON texts as what they encode)."""
    event = message.event
    ((data_key, data),) = decoded.items()
    assert data_key == event.data_key
    if isinstance(event, CohortMembershipChanged):
        assert_user(event.user, data["user"])
        assert_course(event.course, data["course"])
        assert event.cohort_name == data["name"]
    elif isinstance(event, EnrollmentEvent):
        assert_user(event.user, data["user"])
        assert_course(event.course, data["course"])
        assert (event.mode, event.is_active) == (data["mode"], data["is_active"])
        assert event.creation_date == when(data["creation_date"])
        assert data["created_by"] is None
        assert event.created_by is None
    else:
        assert isinstance(event, TrackingLogEmitted)
        assert event.name == data["name"]
        assert event.timestamp == when(data["timestamp"])
        assert event.data == json.loads(data["data"])
        assert event.context == json.loads(data["context"])


def test_the_conformance_data_has_the_seven_entries(entries: list[dict[str, Any]]) -> None:
    assert len(entries) == len(ENTRY_NAMES)


@pytest.mark.parametrize("index", range(len(ENTRY_NAMES)), ids=ENTRY_NAMES)
def test_each_entry_decodes_to_what_openedx_events_decodes(entries: list[dict[str, Any]], index: int) -> None:
    entry = entries[index]
    message = decode_entry(wire_fields(entry))
    assert isinstance(message, OpenedxMessage), message
    assert type(message.event).event_type == entry["fields"]["type"]
    assert_event_is(message, entry["decoded"])
    text = entry["fields"]
    metadata = message.metadata
    assert (metadata.id, metadata.type, metadata.source, metadata.sourcehost) == (
        text["id"],
        text["type"],
        text["source"],
        text["sourcehost"],
    )
    assert metadata.time == datetime.fromisoformat(text["time"])
    assert metadata.minorversion == int(text["minorversion"])
    assert metadata.sourcelib == tuple(int(part) for part in text["sourcelib"].split("."))


@pytest.mark.parametrize("index", range(len(ENTRY_NAMES)), ids=ENTRY_NAMES)
def test_each_entry_is_written_back_byte_for_byte(entries: list[dict[str, Any]], index: int) -> None:
    fields = wire_fields(entries[index])
    message = decode_entry(fields)
    assert isinstance(message, OpenedxMessage)
    assert {name.encode(): value for name, value in encode_entry(message).items()} == fields


def test_the_tracking_logs_read_as_team_and_cohort_membership(entries: list[dict[str, Any]]) -> None:
    readings = []
    for entry in entries[:2]:
        message = decode_entry(wire_fields(entry))
        assert isinstance(message, OpenedxMessage)
        assert isinstance(message.event, TrackingLogEmitted)
        readings.append(read_tracking_log(message.event))
    course = "course-v1:DemoX+CI101+2026"
    assert readings == [
        TeamLearnerAdded(course_key=course, team_id="team-a", user_id=9, method="added_by_another_user"),
        CohortUserAdded(course_key=course, cohort_id=31, cohort_name="Blue", user_id=9),
    ]
    assert not any(isinstance(reading, Rejection) for reading in readings)


def test_the_two_cohort_changes_of_one_learner_share_a_key(entries: list[dict[str, Any]]) -> None:
    blue, red = (decode_entry(wire_fields(entry)) for entry in entries[2:4])
    assert isinstance(blue, OpenedxMessage)
    assert isinstance(red, OpenedxMessage)
    assert blue.key == red.key == "course-v1:DemoX+CI101+2026 user:7"


def test_each_schema_is_the_one_openedx_events_generates() -> None:
    generated = load_json(BUS / "schemas.json")
    assert set(SCHEMAS) == set(generated)
    for event_type, schema in SCHEMAS.items():
        assert schema == generated[event_type], event_type
