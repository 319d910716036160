"""Reading Open edX event bus entries (domain.openedx_events, adapters.openedx_bus): every bad entry is a
rejection with a code and a reason naming what is wrong, never an exception; what is written is read back;
and genuine messages made by openedx-events itself are read as the events they are."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from courseinfra.adapters.openedx_bus.schemas import SCHEMAS
from courseinfra.adapters.openedx_bus.wire import (
    decode_entry,
    encode_entry,
    encode_event_data,
    envelope_for,
    from_kafka_headers,
    kafka_headers,
    with_datetimes,
)
from courseinfra.domain.job_requests import Outcome, Rejection
from courseinfra.domain.openedx_events import (
    METADATA_FIELDS,
    TRACKING_LOGS_READ,
    CohortMembershipChanged,
    EnrollmentChanged,
    EnrollmentCreated,
    EnvelopeMetadata,
    LmsCourse,
    LmsUser,
    OpenedxEvent,
    OpenedxMessage,
    TrackingLogEmitted,
    UnenrollmentCompleted,
    read_event,
    signal_data,
)
from courseinfra.domain.openedx_tracking_logs import (
    CohortCreated,
    CohortUserAdded,
    CohortUserRemoved,
    TeamChanged,
    TeamCreated,
    TeamDeleted,
    TeamLearnerAdded,
    TeamLearnerRemoved,
    read_tracking_log,
)
from tests.support import openedx_signals as genuine

COURSE = "course-v1:DemoX+CI101+2026"
LEARNER = LmsUser(id=7, username="learner-1", email="learner-1@example.org", name="Learner-1", is_active=True)
STAFF = LmsUser(id=2, username="staff", email="staff@example.org", name="", is_active=True)
DEMO = LmsCourse(
    course_key=COURSE, display_name="Demo course", start=datetime(2026, 9, 1, tzinfo=UTC), end=None
)
CREATED = datetime(2026, 9, 2, 10, tzinfo=UTC)
AT = datetime(2026, 9, 3, 12, tzinfo=UTC)

EVENTS: dict[str, OpenedxEvent] = {
    "cohort": CohortMembershipChanged(user=LEARNER, course=DEMO, cohort_name="Blue"),
    "enrollment-created": EnrollmentCreated(
        user=LEARNER, course=DEMO, mode="audit", is_active=True, creation_date=CREATED, created_by=STAFF
    ),
    "enrollment-changed": EnrollmentChanged(
        user=LEARNER,
        course=LmsCourse(
            course_key=COURSE, display_name="", start=None, end=datetime(2027, 1, 1, tzinfo=UTC)
        ),
        mode="verified",
        is_active=True,
        creation_date=CREATED,
    ),
    "unenrollment": UnenrollmentCompleted(
        user=LEARNER, course=DEMO, mode="verified", is_active=False, creation_date=CREATED
    ),
    "tracking-log": TrackingLogEmitted(
        name="edx.cohort.user_added",
        timestamp=AT,
        data={"cohort_id": 31, "cohort_name": "Blue", "user_id": 7},
        context={"course_id": COURSE, "user_id": 2},
    ),
}


def message_of(event: OpenedxEvent, **envelope: Any) -> OpenedxMessage:
    envelope.setdefault("id", "cafb6fee-edc2-11f1-a77e-02fc00000001")
    envelope.setdefault("time", AT)
    envelope.setdefault("sourcehost", "lms.example.org")
    return OpenedxMessage(envelope_for(event, **envelope), event)


def entry_of(event: OpenedxEvent) -> dict[bytes, bytes]:
    return {name.encode(): value for name, value in encode_entry(message_of(event)).items()}


def rejected(outcome: object, code: str) -> Rejection:
    assert isinstance(outcome, Rejection), outcome
    assert outcome.code == code, outcome
    assert outcome.reason
    return outcome


# ------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", EVENTS)
def test_an_entry_written_is_read_back_as_the_same_message(name: str) -> None:
    message = message_of(EVENTS[name])
    assert decode_entry(encode_entry(message)) == message
    assert decode_entry(entry_of(EVENTS[name])) == message


@pytest.mark.parametrize("name", EVENTS)
def test_a_kafka_message_is_read_from_its_headers_and_value(name: str) -> None:
    message = message_of(EVENTS[name])
    value = encode_event_data(message.event)
    assert from_kafka_headers(kafka_headers(message.metadata), value) == message
    assert from_kafka_headers(dict(kafka_headers(message.metadata)), value) == message


def test_a_kafka_header_given_twice_is_refused() -> None:
    message = message_of(EVENTS["cohort"])
    headers = [*kafka_headers(message.metadata), ("ce_type", b"org.openedx.other.v1")]
    outcome = rejected(from_kafka_headers(headers, encode_event_data(message.event)), "invalid-field")
    assert "ce_type" in outcome.reason


def test_keys_order_a_learners_events_in_a_course_and_a_groups_own() -> None:
    assert EVENTS["cohort"].key == f"{COURSE} user:7"
    assert EVENTS["unenrollment"].key == f"{COURSE} user:7"
    assert EVENTS["tracking-log"].key == f"{COURSE} user:7"
    assert CohortCreated(course_key=COURSE, cohort_id=3, cohort_name="A").key == f"{COURSE} cohort:3"
    assert TeamDeleted(course_key=COURSE, team_id="t").key == f"{COURSE} team:t"


def test_an_envelope_for_another_type_is_not_written() -> None:
    message = OpenedxMessage(message_of(EVENTS["cohort"]).metadata, EVENTS["unenrollment"])
    with pytest.raises(ValueError, match="the envelope says"):
        encode_entry(message)


# ---------------------------------------------------------------------------------- the envelope


def test_an_event_type_not_read_is_skipped() -> None:
    fields = entry_of(EVENTS["cohort"])
    fields[b"type"] = b"org.openedx.learning.certificate.created.v1"
    outcome = rejected(decode_entry(fields), "event-type-not-read")
    assert outcome.outcome is Outcome.SKIPPED
    assert "certificate.created" in outcome.reason


@pytest.mark.parametrize("field", METADATA_FIELDS)
def test_each_missing_envelope_field_is_named(field: str) -> None:
    fields = entry_of(EVENTS["cohort"])
    del fields[field.encode()]
    outcome = rejected(decode_entry(fields), "missing-field")
    assert outcome.outcome is Outcome.FAILED
    assert f"metadata.{field}" in outcome.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", b"not-a-uuid"),
        ("type", b"  "),
        ("time", b"yesterday"),
        ("minorversion", b"one"),
        ("minorversion", b"-1"),
        ("sourcelib", b"10.five"),
        ("source", b"\xff\xfe"),
    ],
)
def test_each_malformed_envelope_field_is_named(field: str, value: bytes) -> None:
    fields = entry_of(EVENTS["cohort"])
    fields[field.encode()] = value
    assert f"metadata.{field}" in rejected(decode_entry(fields), "invalid-field").reason


def test_text_keys_and_values_are_read_as_bytes_are() -> None:
    fields: dict[bytes | str, bytes | str] = {
        name.decode(): value.decode()
        for name, value in entry_of(EVENTS["cohort"]).items()
        if name != b"event_data"
    }
    fields["event_data"] = entry_of(EVENTS["cohort"])[b"event_data"]
    assert decode_entry(fields) == message_of(EVENTS["cohort"])


def test_a_time_without_offset_is_utc() -> None:
    fields = entry_of(EVENTS["cohort"])
    fields[b"time"] = b"2026-09-03T12:00:00"
    message = decode_entry(fields)
    assert isinstance(message, OpenedxMessage)
    assert message.metadata.time == AT


def test_another_minor_version_cannot_be_read() -> None:
    fields = entry_of(EVENTS["cohort"])
    fields[b"minorversion"] = b"1"
    outcome = rejected(decode_entry(fields), "unsupported-minor-version")
    assert outcome.outcome is Outcome.FAILED
    assert "minor version 1" in outcome.reason


def test_missing_or_text_event_data_is_refused() -> None:
    fields: dict[bytes | str, bytes | str] = dict(entry_of(EVENTS["cohort"]))
    event_data = fields.pop(b"event_data")
    assert "event_data" in rejected(decode_entry(fields), "missing-field").reason
    fields[b"event_data"] = bytes(event_data).decode("latin-1")
    assert "text, not bytes" in rejected(decode_entry(fields), "invalid-field").reason


# ---------------------------------------------------------------------------------- the Avro bytes


@pytest.mark.parametrize("name", EVENTS)
def test_every_truncation_and_an_extra_byte_are_undecodable(name: str) -> None:
    fields = entry_of(EVENTS[name])
    whole = fields[b"event_data"]
    for length in range(len(whole)):
        rejected(decode_entry({**fields, b"event_data": whole[:length]}), "undecodable-event-data")
    outcome = rejected(decode_entry({**fields, b"event_data": whole + b"\x00"}), "undecodable-event-data")
    assert "1 bytes left" in outcome.reason


def test_garbage_is_undecodable() -> None:
    fields = entry_of(EVENTS["cohort"])
    for garbage in (
        b"",
        b"\xff" * 20,
        b"\x0e\x01\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        b"\x0e\x01\x04\xff\xfe",
    ):
        outcome = rejected(decode_entry({**fields, b"event_data": garbage}), "undecodable-event-data")
        assert "cohort_membership.changed.v1" in outcome.reason


def raw_avro(event_type: str, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(SCHEMAS[event_type]), record)
    return out.getvalue()


def test_a_date_that_is_not_iso_8601_is_named() -> None:
    event = EVENTS["cohort"]
    record = signal_data(event)
    record["cohort"]["course"]["start"] = "the first of September"
    fields = {**entry_of(event), b"event_data": raw_avro(event.event_type, record)}
    assert "cohort.course.start" in rejected(decode_entry(fields), "invalid-field").reason


def test_datetimes_sent_as_text_are_read_as_datetimes() -> None:
    data = json.loads(json.dumps(signal_data(EVENTS["enrollment-changed"]), default=datetime.isoformat))
    assert isinstance(data["enrollment"]["creation_date"], str)
    converted = with_datetimes(EnrollmentChanged.event_type, data)
    assert isinstance(converted, dict)
    assert read_event(EnrollmentChanged.event_type, converted) == EVENTS["enrollment-changed"]
    data["enrollment"]["course"]["end"] = "soon"
    assert (
        "enrollment.course.end"
        in rejected(with_datetimes(EnrollmentChanged.event_type, data), "invalid-field").reason
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_type=st.sampled_from(sorted(SCHEMAS)), event_data=st.binary(max_size=300))
def test_random_event_data_never_raises(event_type: str, event_data: bytes) -> None:
    fields = {**entry_of(EVENTS["cohort"]), b"type": event_type.encode(), b"event_data": event_data}
    assert isinstance(decode_entry(fields), (OpenedxMessage, Rejection))


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(EVENTS)),
    position=st.integers(min_value=0, max_value=400),
    byte=st.integers(min_value=0, max_value=255),
)
def test_a_corrupted_byte_never_raises(name: str, position: int, byte: int) -> None:
    fields = entry_of(EVENTS[name])
    data = bytearray(fields[b"event_data"])
    data[position % len(data)] = byte
    assert isinstance(decode_entry({**fields, b"event_data": bytes(data)}), (OpenedxMessage, Rejection))


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(METADATA_FIELDS), value=st.binary(max_size=40))
def test_random_envelope_fields_never_raise(field: str, value: bytes) -> None:
    fields = {**entry_of(EVENTS["tracking-log"]), field.encode(): value}
    assert isinstance(decode_entry(fields), (OpenedxMessage, Rejection))


# ------------------------------------------------------------------------------ the signal's fields


def paths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for key, value in data.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found.extend(paths(value, (*prefix, key)))
    return found


OPTIONAL = {"start", "end", "created_by"}
ENROLLMENT_DATA = signal_data(EVENTS["enrollment-created"])


@pytest.mark.parametrize("path", [p for p in paths(ENROLLMENT_DATA) if p[-1] not in OPTIONAL], ids=".".join)
def test_each_missing_field_is_named(path: tuple[str, ...]) -> None:
    data = copy.deepcopy(ENROLLMENT_DATA)
    parent = data
    for name in path[:-1]:
        parent = parent[name]
    del parent[path[-1]]
    reason = rejected(read_event(EnrollmentCreated.event_type, data), "missing-field").reason
    expected = "signal.enrollment" if path == ("enrollment",) else ".".join(path)
    assert reason == f"{expected} is missing"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("enrollment", "user", "id"), "seven"),
        (("enrollment", "user", "id"), True),
        (("enrollment", "user", "is_active"), "yes"),
        (("enrollment", "user", "pii"), "learner-1"),
        (("enrollment", "user", "pii", "email"), None),
        (("enrollment", "course", "course_key"), ""),
        (("enrollment", "course", "start"), "2026-09-01"),
        (("enrollment", "mode"), " "),
        (("enrollment", "creation_date"), 1788000000),
        (("enrollment", "created_by"), {"id": 2}),
    ],
    ids=lambda item: ".".join(item) if isinstance(item, tuple) else repr(item),
)
def test_each_malformed_field_is_named(path: tuple[str, ...], value: Any) -> None:
    data = copy.deepcopy(ENROLLMENT_DATA)
    parent = data
    for name in path[:-1]:
        parent = parent[name]
    parent[path[-1]] = value
    outcome = read_event(EnrollmentCreated.event_type, data)
    assert isinstance(outcome, Rejection)
    assert outcome.code in {"invalid-field", "missing-field"}
    assert ".".join(path) in outcome.reason


def test_signal_data_that_is_not_an_object_is_refused() -> None:
    rejected(read_event(EnrollmentCreated.event_type, [1, 2]), "invalid-field")  # type: ignore[arg-type]
    rejected(read_event(EnrollmentCreated.event_type, {"enrollment": "x"}), "invalid-field")


def test_a_naive_datetime_is_utc_and_unknown_fields_are_ignored() -> None:
    data = copy.deepcopy(ENROLLMENT_DATA)
    data["enrollment"]["creation_date"] = datetime(2026, 9, 2, 10)
    data["enrollment"]["added_in_a_minor_version"] = "x"
    assert read_event(EnrollmentCreated.event_type, data) == EVENTS["enrollment-created"]


# ------------------------------------------------------------------------------------ tracking logs


def tracking(name: str, data: Any, context: Any = None) -> TrackingLogEmitted | Rejection:
    if context is None:
        context = {"course_id": COURSE, "user_id": 2}
    signal = {
        "tracking_log": {
            "name": name,
            "timestamp": AT,
            "data": data if isinstance(data, str) else json.dumps(data),
            "context": context if isinstance(context, str) else json.dumps(context),
        }
    }
    outcome = read_event(TrackingLogEmitted.event_type, signal)
    assert isinstance(outcome, (TrackingLogEmitted, Rejection))
    return outcome


READINGS = [
    (
        "edx.cohort.created",
        {"cohort_id": 3, "cohort_name": "A"},
        CohortCreated(course_key=COURSE, cohort_id=3, cohort_name="A"),
    ),
    (
        "edx.cohort.user_added",
        {"cohort_id": 3, "cohort_name": "A", "user_id": 9},
        CohortUserAdded(course_key=COURSE, cohort_id=3, cohort_name="A", user_id=9),
    ),
    (
        "edx.cohort.user_removed",
        {"cohort_id": 3, "cohort_name": "A", "user_id": "9"},
        CohortUserRemoved(course_key=COURSE, cohort_id=3, cohort_name="A", user_id=9),
    ),
    ("edx.team.created", {"team_id": "t-1"}, TeamCreated(course_key=COURSE, team_id="t-1")),
    ("edx.team.deleted", {"team_id": "t-1"}, TeamDeleted(course_key=COURSE, team_id="t-1")),
    (
        "edx.team.changed",
        {"team_id": "t-1", "field": "name", "old": "Old", "new": "New", "truncated": []},
        TeamChanged(course_key=COURSE, team_id="t-1", field="name", old="Old", new="New"),
    ),
    (
        "edx.team.learner_added",
        {"team_id": "t-1", "user_id": 9, "add_method": "joined_from_team_view"},
        TeamLearnerAdded(course_key=COURSE, team_id="t-1", user_id=9, method="joined_from_team_view"),
    ),
    (
        "edx.team.learner_removed",
        {"team_id": "t-1", "user_id": 9, "remove_method": "team_deleted"},
        TeamLearnerRemoved(course_key=COURSE, team_id="t-1", user_id=9, method="team_deleted"),
    ),
]


def test_every_tracking_log_read_has_a_reading() -> None:
    assert {name for name, _, _ in READINGS} == TRACKING_LOGS_READ


@pytest.mark.parametrize(("name", "data", "reading"), READINGS, ids=[name for name, _, _ in READINGS])
def test_each_tracking_log_reads_as_its_typed_event(name: str, data: dict[str, Any], reading: object) -> None:
    log = tracking(name, data)
    assert isinstance(log, TrackingLogEmitted)
    assert read_tracking_log(log) == reading


def test_a_team_log_outside_a_course_context_takes_the_course_from_its_data() -> None:
    log = tracking("edx.team.deleted", {"team_id": "t-1", "course_id": COURSE}, context={"course_id": ""})
    assert isinstance(log, TrackingLogEmitted)
    assert read_tracking_log(log) == TeamDeleted(course_key=COURSE, team_id="t-1")


def test_a_tracking_log_not_read_is_skipped() -> None:
    outcome = rejected(tracking("edx.video.played", "not even JSON"), "tracking-log-not-read")
    assert outcome.outcome is Outcome.SKIPPED
    log = TrackingLogEmitted(name="edx.video.played", timestamp=AT, data={}, context={})
    assert rejected(read_tracking_log(log), "tracking-log-not-read").outcome is Outcome.SKIPPED
    assert log.key == "edx.video.played"


@pytest.mark.parametrize(
    ("data", "context", "code", "named"),
    [
        ("{not json", None, "invalid-field", "tracking_log.data"),
        ("[1, 2]", None, "invalid-field", "tracking_log.data"),
        ("[" * 100_000 + "]" * 100_000, None, "invalid-field", "tracking_log.data"),
        ({"cohort_id": 3, "cohort_name": "A"}, "", "invalid-field", "tracking_log.context"),
    ],
    ids=["invalid-json", "not-an-object", "nested-too-deep", "empty-context"],
)
def test_a_tracking_log_with_malformed_json_is_refused(
    data: Any, context: Any, code: str, named: str
) -> None:
    assert named in rejected(tracking("edx.cohort.user_added", data, context), code).reason


@pytest.mark.parametrize(
    ("data", "context", "code", "named"),
    [
        ({"cohort_id": 3, "cohort_name": "A"}, None, "missing-field", "tracking_log.data.user_id"),
        (
            {"cohort_id": 3, "cohort_name": "A", "user_id": "nine"},
            None,
            "invalid-field",
            "tracking_log.data.user_id",
        ),
        (
            {"cohort_id": 3, "cohort_name": "A", "user_id": 9},
            {"user_id": 2},
            "missing-field",
            "tracking_log.context.course_id",
        ),
        (
            {"cohort_id": 3, "cohort_name": "A", "user_id": 9},
            {"course_id": 5},
            "invalid-field",
            "tracking_log.context.course_id",
        ),
        (
            {"cohort_id": None, "cohort_name": "A", "user_id": 9},
            None,
            "invalid-field",
            "tracking_log.data.cohort_id",
        ),
    ],
    ids=["no-user-id", "user-id-not-a-number", "no-course", "course-not-text", "cohort-id-null"],
)
def test_a_tracking_log_lacking_what_its_reading_needs_is_refused(
    data: dict[str, Any], context: Any, code: str, named: str
) -> None:
    log = tracking("edx.cohort.user_added", data, context)
    assert isinstance(log, TrackingLogEmitted)
    assert named in rejected(read_tracking_log(log), code).reason


def test_a_team_change_with_odd_truncated_is_refused() -> None:
    log = tracking(
        "edx.team.changed", {"team_id": "t", "field": "name", "old": "a", "new": "b", "truncated": "old"}
    )
    assert isinstance(log, TrackingLogEmitted)
    assert "truncated" in rejected(read_tracking_log(log), "invalid-field").reason


# ------------------------------------------------------------------------- genuine openedx-events


@pytest.mark.parametrize("event_type", sorted(SCHEMAS))
def test_each_schema_is_the_one_openedx_events_generates(event_type: str) -> None:
    assert SCHEMAS[event_type] == genuine.generated_schema(event_type)


GENUINE = [
    (
        CohortMembershipChanged.event_type,
        genuine.cohort_changed("Blue"),
        CohortMembershipChanged(user=LEARNER, course=DEMO, cohort_name="Blue"),
    ),
    (
        EnrollmentCreated.event_type,
        genuine.enrollment("audit", created_by=genuine.user(2, "staff")),
        EnrollmentCreated(
            user=LmsUser(
                id=8, username="learner-2", email="learner-2@example.org", name="Learner-2", is_active=True
            ),
            course=DEMO,
            mode="audit",
            is_active=True,
            creation_date=CREATED,
            created_by=LmsUser(
                id=2, username="staff", email="staff@example.org", name="Staff", is_active=True
            ),
        ),
    ),
    (
        UnenrollmentCompleted.event_type,
        genuine.enrollment("verified", is_active=False),
        UnenrollmentCompleted(
            user=LmsUser(
                id=8, username="learner-2", email="learner-2@example.org", name="Learner-2", is_active=True
            ),
            course=DEMO,
            mode="verified",
            is_active=False,
            creation_date=CREATED,
        ),
    ),
    (
        TrackingLogEmitted.event_type,
        genuine.tracking_log(
            "edx.team.learner_removed",
            json.dumps({"team_id": "t-1", "user_id": 7, "remove_method": "self_removal"}),
            json.dumps({"course_id": COURSE, "user_id": 7}),
        ),
        TrackingLogEmitted(
            name="edx.team.learner_removed",
            timestamp=AT,
            data={"team_id": "t-1", "user_id": 7, "remove_method": "self_removal"},
            context={"course_id": COURSE, "user_id": 7},
        ),
    ),
]


@pytest.mark.parametrize(("event_type", "data", "expected"), GENUINE, ids=[t for t, _, _ in GENUINE])
def test_a_genuine_openedx_events_message_is_read_as_its_event(
    event_type: str, data: dict[str, Any], expected: OpenedxEvent
) -> None:
    entry = genuine.redis_entry(event_type, data, sourcehost="lms.example.org")
    message = decode_entry(entry)
    assert isinstance(message, OpenedxMessage), message
    assert message.event == expected
    assert message.metadata == EnvelopeMetadata(
        id=entry[b"id"].decode(),
        type=event_type,
        source="openedx/SERVICE_NAME_UNSET/web",
        time=datetime.fromisoformat(entry[b"time"].decode()),
        minorversion=0,
        sourcehost="lms.example.org",
        sourcelib=(10, 5, 0),
    )
    # Both ways: openedx-events writes the bytes this project writes, and reads what it writes.
    assert encode_event_data(expected) == entry[b"event_data"]
    assert genuine.deserialized(event_type, encode_event_data(expected)) == data
