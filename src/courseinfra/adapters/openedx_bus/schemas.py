"""The Avro schema of each Open edX signal this project reads, as openedx-events 10.5 generates it.

The event bus writes ``event_data`` as *schemaless* Avro: the bytes carry no schema, and can be read only
with the schema they were written with. These are written out here from the signals' data classes
(``openedx_events.learning.data``, ``openedx_events.analytics.data``) so that no Django settings or
openedx-events import are needed to read the bus, and must stay equal, once parsed from JSON, to what
``openedx_events.event_bus.avro.schema.schema_from_signal`` gives (the conformance suite compares them
with the schemas the library generated).

How openedx-events maps the data classes: a class is a ``record`` named after it (declared in full the
first time it appears, by name after); ``int`` is ``long``; a custom type (a course key, a datetime) is
its text (``string``; a datetime as ISO 8601); an attribute with ``default=None`` is the union
``["null", T]`` with default null. An attribute with a non-null default (``display_name``'s empty text)
stays a plain ``string``.

A signal's *minor version* may add optional fields: such bytes cannot be read with these schemas, so each
schema is kept with the minor version it is for (:data:`MINOR_VERSIONS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from courseinfra.domain.openedx_events import (
    CohortMembershipChanged,
    EnrollmentChanged,
    EnrollmentCreated,
    OpenedxEvent,
    TrackingLogEmitted,
    UnenrollmentCompleted,
)

#: The ``doc`` openedx-events puts on every top-level schema.
CLOUD_EVENT_DOC = "Avro Event Format for CloudEvents created with openedx_events/schema"

Schema = dict[str, Any]


def _field(name: str, avro_type: Any) -> Schema:
    return {"name": name, "type": avro_type}


def _optional(name: str, avro_type: Any) -> Schema:
    # attrs' ``default=None``: openedx-events' ADR 7, an implicit union with null.
    return {"name": name, "type": ["null", avro_type], "default": None}


def _record(name: str, fields: list[Schema]) -> Schema:
    return {"name": name, "type": "record", "fields": fields}


def _user_data() -> Schema:
    """``UserData``: ``UserNonPersonalData`` (id, is_active) and its ``pii``."""
    personal = _record(
        "UserPersonalData",
        [_field("username", "string"), _field("email", "string"), _field("name", "string")],
    )
    return _record(
        "UserData", [_field("id", "long"), _field("is_active", "boolean"), _field("pii", personal)]
    )


def _course_data() -> Schema:
    """``CourseData``: the course key, display name, and start and end (datetimes, optional)."""
    return _record(
        "CourseData",
        [
            _field("course_key", "string"),
            _field("display_name", "string"),
            _optional("start", "string"),
            _optional("end", "string"),
        ],
    )


def _cohort_data() -> Schema:
    return _record(
        "CohortData",
        [_field("user", _user_data()), _field("course", _course_data()), _field("name", "string")],
    )


def _course_enrollment_data() -> Schema:
    return _record(
        "CourseEnrollmentData",
        [
            _field("user", _user_data()),
            _field("course", _course_data()),
            _field("mode", "string"),
            _field("is_active", "boolean"),
            _field("creation_date", "string"),
            # UserData is declared by ``user`` above: a second declaration would be an Avro error.
            _optional("created_by", "UserData"),
        ],
    )


def _tracking_log_data() -> Schema:
    return _record(
        "TrackingLogData",
        [
            _field("name", "string"),
            _field("timestamp", "string"),
            _field("data", "string"),
            _field("context", "string"),
        ],
    )


def _cloud_event(event: type[OpenedxEvent], data: Schema) -> Schema:
    return {
        "name": "CloudEvent",
        "type": "record",
        "doc": CLOUD_EVENT_DOC,
        "namespace": event.event_type,
        "fields": [_field(event.data_key, data)],
    }


def signal_schema(event: type[OpenedxEvent]) -> Schema:
    """A fresh copy of the Avro schema of ``event``'s signal (callers may parse or change it)."""
    return _BUILDERS[event]()


_BUILDERS: dict[type[OpenedxEvent], Callable[[], Schema]] = {
    CohortMembershipChanged: lambda: _cloud_event(CohortMembershipChanged, _cohort_data()),
    EnrollmentCreated: lambda: _cloud_event(EnrollmentCreated, _course_enrollment_data()),
    EnrollmentChanged: lambda: _cloud_event(EnrollmentChanged, _course_enrollment_data()),
    UnenrollmentCompleted: lambda: _cloud_event(UnenrollmentCompleted, _course_enrollment_data()),
    TrackingLogEmitted: lambda: _cloud_event(TrackingLogEmitted, _tracking_log_data()),
}

#: Each event type read to the schema of its signal.
SCHEMAS: dict[str, Schema] = {event.event_type: signal_schema(event) for event in _BUILDERS}

_COURSE_DATES = (("course", "start"), ("course", "end"))

#: Each event type read to the paths in its decoded data (below the signal's data key) of the attributes
#: that are datetimes, which openedx-events writes as ISO 8601 text: the reader turns them back into
#: datetimes, as openedx-events' deserializer does.
DATETIME_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    CohortMembershipChanged.event_type: _COURSE_DATES,
    EnrollmentCreated.event_type: (*_COURSE_DATES, ("creation_date",)),
    EnrollmentChanged.event_type: (*_COURSE_DATES, ("creation_date",)),
    UnenrollmentCompleted.event_type: (*_COURSE_DATES, ("creation_date",)),
    TrackingLogEmitted.event_type: (("timestamp",),),
}

#: Each event type read to the minor version its schema is for (every one is at 0 in openedx-events 10.5).
MINOR_VERSIONS: dict[str, int] = {event.event_type: 0 for event in _BUILDERS}
