"""Genuine Open edX event bus messages, made by openedx-events itself (a dev dependency): the signals'
data classes, their Avro serializer and schema generator, and the envelope of a Redis stream entry as
edx-event-bus-redis writes it (its ``get_headers_from_metadata``, which is not installed: it needs a
running Open edX's settings).

openedx-events is a Django app: importing this module configures minimal Django settings once, unless
something configured them before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from opaque_keys.edx.keys import CourseKey
from openedx_events.analytics.data import TrackingLogData
from openedx_events.analytics.signals import TRACKING_EVENT_EMITTED
from openedx_events.data import EventsMetadata
from openedx_events.event_bus.avro.deserializer import deserialize_bytes_to_event_data
from openedx_events.event_bus.avro.schema import schema_from_signal
from openedx_events.event_bus.avro.serializer import serialize_event_data_to_bytes
from openedx_events.learning.data import (
    CohortData,
    CourseData,
    CourseEnrollmentData,
    UserData,
    UserPersonalData,
)
from openedx_events.learning.signals import (
    COHORT_MEMBERSHIP_CHANGED,
    COURSE_ENROLLMENT_CHANGED,
    COURSE_ENROLLMENT_CREATED,
    COURSE_UNENROLLMENT_COMPLETED,
)
from openedx_events.tooling import OpenEdxPublicSignal

# The envelope's defaults read Django settings (SERVICE_VARIANT): the import alone needs none.
if not settings.configured:
    settings.configure(USE_TZ=True)

COURSE_KEY = "course-v1:DemoX+CI101+2026"

#: The signals whose events this project reads, by event type.
SIGNALS: dict[str, OpenEdxPublicSignal] = {
    signal.event_type: signal
    for signal in (
        COHORT_MEMBERSHIP_CHANGED,
        COURSE_ENROLLMENT_CREATED,
        COURSE_ENROLLMENT_CHANGED,
        COURSE_UNENROLLMENT_COMPLETED,
        TRACKING_EVENT_EMITTED,
    )
}


def generated_schema(event_type: str) -> dict[str, Any]:
    """The Avro schema openedx-events generates for the signal of ``event_type``."""
    schema: dict[str, Any] = schema_from_signal(SIGNALS[event_type])
    return schema


def user(user_id: int = 7, username: str = "learner-1", *, is_active: bool = True) -> UserData:
    return UserData(
        id=user_id,
        is_active=is_active,
        pii=UserPersonalData(username=username, email=f"{username}@example.org", name=username.title()),
    )


def course(course_key: str = COURSE_KEY, **fields: Any) -> CourseData:
    fields.setdefault("display_name", "Demo course")
    fields.setdefault("start", datetime(2026, 9, 1, tzinfo=UTC))
    return CourseData(course_key=CourseKey.from_string(course_key), **fields)


def cohort_changed(name: str = "Blue", *, learner: UserData | None = None) -> dict[str, Any]:
    """The data of a COHORT_MEMBERSHIP_CHANGED signal."""
    return {"cohort": CohortData(user=learner or user(), course=course(), name=name)}


def enrollment(
    mode: str = "audit", *, is_active: bool = True, created_by: UserData | None = None
) -> dict[str, Any]:
    """The data of an enrollment signal (created, changed or unenrollment completed)."""
    return {
        "enrollment": CourseEnrollmentData(
            user=user(8, "learner-2"),
            course=course(),
            mode=mode,
            is_active=is_active,
            creation_date=datetime(2026, 9, 2, 10, tzinfo=UTC),
            created_by=created_by,
        )
    }


def tracking_log(name: str, data: str, context: str) -> dict[str, Any]:
    """The data of a TRACKING_EVENT_EMITTED signal (``data`` and ``context`` are JSON text)."""
    return {
        "tracking_log": TrackingLogData(
            name=name, timestamp=datetime(2026, 9, 3, 12, tzinfo=UTC), data=data, context=context
        )
    }


def serialized(event_type: str, data: dict[str, Any]) -> bytes:
    """``data`` as the event bus puts it on the wire: openedx-events' Avro serializer."""
    encoded: bytes = serialize_event_data_to_bytes(data, SIGNALS[event_type])
    return encoded


def deserialized(event_type: str, event_data: bytes) -> dict[str, Any]:
    """What openedx-events' own deserializer reads from ``event_data``."""
    decoded: dict[str, Any] = deserialize_bytes_to_event_data(event_data, SIGNALS[event_type])
    return decoded


def redis_entry(event_type: str, data: dict[str, Any], **metadata: Any) -> dict[bytes, bytes]:
    """The stream entry edx-event-bus-redis 0.6 writes for a signal of ``event_type`` sent with ``data``
    (``metadata`` overrides the envelope's fields: ``id``, ``time``, ``sourcehost``, ...), as redis-py
    reads it back: bytes keys and values."""
    envelope = EventsMetadata(event_type=event_type, **metadata)
    fields = {
        "type": envelope.event_type,
        "id": str(envelope.id),
        "source": envelope.source,
        "time": envelope.time.isoformat(),
        "minorversion": str(envelope.minorversion),
        "sourcehost": envelope.sourcehost,
        "sourcelib": ".".join(map(str, envelope.sourcelib)),
    }
    entry = {name.encode(): value.encode() for name, value in fields.items()}
    entry[b"event_data"] = serialized(event_type, data)
    return entry
