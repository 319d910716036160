"""The Open edX events this project reads, as frozen typed contracts, and the reading of a signal's
decoded data into them, or a reasoned rejection.

Open edX sends its signals (openedx-events) over an event bus. The adapter
(``adapters.openedx_bus.wire``) decodes an entry into its :class:`EnvelopeMetadata` and the *decoded
signal data* that openedx-events' own deserializer gives: a mapping from the signal's data key to nested
mappings (``{"cohort": {"user": {...}, "course": {...}, "name": "Blue"}}``), datetimes as datetimes,
course keys as text. :func:`read_message` reads that into an :class:`OpenedxMessage`.

Reading never raises on bad input. A malformed field is a ``failed`` :class:`Rejection` whose code is
``missing-field`` or ``invalid-field`` and whose reason names the field by its path
(``cohort.user.pii.email``), so that the entry can be kept and replayed (ADR 0005); what this project does
not read (another event type, a tracking log it does not follow) is ``skipped``.

Each event is named after the Open edX type it reads and has that type as ``event_type`` (an Open edX
type, ``org.openedx.<domain>.<subject>.<action>.v<N>``, never one of this project's) and a ``key``: the
text that orders one subject's events, ``"<course key> user:<user id>"`` for what happens to a learner in
a course, ``"<course key> cohort:<id>"`` or ``"<course key> team:<id>"`` for what happens to a group. A
datetime without an offset is read as UTC (Open edX's are UTC).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from courseinfra.domain import openedx_fields as field
from courseinfra.domain.job_requests import Outcome, Rejection

T = TypeVar("T")


def learner_key(course_key: str, user_id: int) -> str:
    """The key of what happens to learner ``user_id`` in ``course_key``."""
    return f"{course_key} user:{user_id}"


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class LmsUser:
    """An Open edX user as its signals carry it (``UserData``).

    - ``id``: the LMS user id (this project names users by it);
    - ``username``, ``email``, ``name``: the user's personal data (``pii``), as the LMS has them;
    - ``is_active``: false for a user whose account is not activated, or disabled.
    """

    id: int
    username: str
    email: str
    name: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class LmsCourse:
    """A course as Open edX signals carry it (``CourseData``): ``course_key`` (``course-v1:Org+Num+Run``),
    ``display_name`` (may be empty), ``start`` and ``end`` (null when not set)."""

    course_key: str
    display_name: str
    start: datetime | None
    end: datetime | None


# -------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class OpenedxEvent:
    """Base of the Open edX events read. ``event_type`` is the Open edX type; ``data_key`` the key under
    which the signal's data sits in the decoded data (and the name of the Avro schema's one field)."""

    event_type: ClassVar[str]
    data_key: ClassVar[str]

    @property
    def key(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class LearnerInCourseEvent(OpenedxEvent):
    """Base of the events about one learner (``user``) in one course (``course``; ``course_key`` for
    short): their key is the learner's in the course."""

    user: LmsUser
    course: LmsCourse

    @property
    def course_key(self) -> str:
        return self.course.course_key

    @property
    def key(self) -> str:
        return learner_key(self.course.course_key, self.user.id)


@dataclass(frozen=True, kw_only=True)
class CohortMembershipChanged(LearnerInCourseEvent):
    """A learner was put into a cohort of a course (the LMS moves them out of the previous one, which the
    event does not name).

    - ``user``: the learner; ``course``: the course (``course_key`` for short; the key is the learner's);
    - ``cohort_name``: the cohort they are now in (cohort names are unique in a course).
    """

    event_type: ClassVar[str] = "org.openedx.learning.cohort_membership.changed.v1"
    data_key: ClassVar[str] = "cohort"
    cohort_name: str


@dataclass(frozen=True, kw_only=True)
class EnrollmentEvent(LearnerInCourseEvent):
    """What the three enrollment signals carry (``CourseEnrollmentData``); the class says which happened.

    - ``user``: the learner; ``course``: the course (``course_key`` for short; the key is the learner's);
    - ``mode``: the enrollment track (``audit``, ``verified``, ...) after the change;
    - ``is_active``: whether the enrollment is active after it (false once unenrolled);
    - ``creation_date``: when the enrollment was first created;
    - ``created_by``: the user who enrolled the learner, when not themselves (null otherwise).
    """

    data_key: ClassVar[str] = "enrollment"
    mode: str
    is_active: bool
    creation_date: datetime
    created_by: LmsUser | None = None


@dataclass(frozen=True, kw_only=True)
class EnrollmentCreated(EnrollmentEvent):
    """A learner was enrolled in a course for the first time."""

    event_type: ClassVar[str] = "org.openedx.learning.course.enrollment.created.v1"


@dataclass(frozen=True, kw_only=True)
class EnrollmentChanged(EnrollmentEvent):
    """An enrollment changed: its mode (track), or whether it is active."""

    event_type: ClassVar[str] = "org.openedx.learning.course.enrollment.changed.v1"


@dataclass(frozen=True, kw_only=True)
class UnenrollmentCompleted(EnrollmentEvent):
    """A learner was unenrolled from a course (``is_active`` false)."""

    event_type: ClassVar[str] = "org.openedx.learning.course.unenrollment.completed.v1"


#: The tracking logs this project reads (``openedx_tracking_logs.read_tracking_log``, one reading class
#: each); the others are skipped.
TRACKING_LOGS_READ = frozenset(
    {
        "edx.cohort.created",
        "edx.cohort.user_added",
        "edx.cohort.user_removed",
        "edx.team.created",
        "edx.team.deleted",
        "edx.team.changed",
        "edx.team.learner_added",
        "edx.team.learner_removed",
    }
)


@dataclass(frozen=True, kw_only=True)
class TrackingLogEmitted(OpenedxEvent):
    """A tracking log the LMS emitted, one of :data:`TRACKING_LOGS_READ` (the others are skipped when
    read: the signal carries every tracking log of the platform).

    - ``name``: the tracking log's name (``edx.cohort.user_added``, ...);
    - ``timestamp``: when it was emitted;
    - ``data``: its event data (the JSON object the signal carries as text);
    - ``context``: its context (``course_id``, the acting ``user_id``, ...), likewise.

    ``openedx_tracking_logs.read_tracking_log`` reads it into a typed event; the key is that event's, or the name when it
    does not read.
    """

    event_type: ClassVar[str] = "org.openedx.analytics.tracking.event.emitted.v1"
    data_key: ClassVar[str] = "tracking_log"
    name: str
    timestamp: datetime
    data: Mapping[str, Any]
    context: Mapping[str, Any]

    @property
    def key(self) -> str:
        # Imported here: the readings module reads this class.
        from courseinfra.domain.openedx_tracking_logs import read_tracking_log

        reading = read_tracking_log(self)
        return self.name if isinstance(reading, Rejection) else reading.key


#: Every Open edX event type this project reads, to its class.
EVENT_CLASSES: dict[str, type[OpenedxEvent]] = {
    cls.event_type: cls
    for cls in (
        CohortMembershipChanged,
        EnrollmentCreated,
        EnrollmentChanged,
        UnenrollmentCompleted,
        TrackingLogEmitted,
    )
}


# ------------------------------------------------------------------------------------------ envelope


#: The envelope's fields, as the Redis bus names them (the Kafka bus's headers are ``ce_`` and these
#: for the CloudEvents ones, ``sourcehost`` and ``sourcelib`` as they are).
METADATA_FIELDS = ("id", "type", "source", "time", "minorversion", "sourcehost", "sourcelib")


@dataclass(frozen=True, slots=True)
class EnvelopeMetadata:
    """An event's envelope (openedx-events' ``EventsMetadata``, OEP-41).

    - ``id``: the event's UUID, in canonical text (a redelivered event has the same);
    - ``type``: the Open edX event type; ``minorversion``: its minor version (0 unless fields were added);
    - ``source``: the logical source (``openedx/lms/web``); ``sourcehost``: the host that sent it;
    - ``time``: when the event happened (UTC);
    - ``sourcelib``: the openedx-events version that sent it, as numbers (``(10, 5, 0)``).
    """

    id: str
    type: str
    source: str
    time: datetime
    minorversion: int
    sourcehost: str
    sourcelib: tuple[int, ...]

    def fields(self) -> dict[str, str]:
        """The envelope as the bus writes it: text per field of :data:`METADATA_FIELDS`."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "time": self.time.isoformat(),
            "minorversion": str(self.minorversion),
            "sourcehost": self.sourcehost,
            "sourcelib": ".".join(map(str, self.sourcelib)),
        }


@dataclass(frozen=True, slots=True)
class OpenedxMessage:
    """An Open edX event read off the bus: its envelope and the typed event (``key`` is the event's)."""

    metadata: EnvelopeMetadata
    event: OpenedxEvent

    @property
    def key(self) -> str:
        return self.event.key


# ------------------------------------------------------------------------------------------- reading


def _user(data: Mapping[str, Any], name: str, path: str) -> LmsUser:
    record = field.mapping(data, name, path)
    here = f"{path}.{name}"
    pii = field.mapping(record, "pii", here)
    return LmsUser(
        id=field.integer(record, "id", here),
        username=field.text(pii, "username", f"{here}.pii"),
        email=field.text(pii, "email", f"{here}.pii"),
        name=field.text(pii, "name", f"{here}.pii"),
        is_active=field.boolean(record, "is_active", here),
    )


def _course(data: Mapping[str, Any], path: str) -> LmsCourse:
    record = field.mapping(data, "course", path)
    here = f"{path}.course"
    return LmsCourse(
        course_key=field.text(record, "course_key", here, required=True),
        display_name=field.text(record, "display_name", here),
        start=field.optional_date_time(record, "start", here),
        end=field.optional_date_time(record, "end", here),
    )


def _read_cohort(data: Mapping[str, Any], path: str) -> CohortMembershipChanged:
    return CohortMembershipChanged(
        user=_user(data, "user", path),
        course=_course(data, path),
        cohort_name=field.text(data, "name", path, required=True),
    )


def _enrollment_reader(cls: type[EnrollmentEvent]) -> Callable[[Mapping[str, Any], str], OpenedxEvent]:
    def read(data: Mapping[str, Any], path: str) -> OpenedxEvent:
        created_by = _user(data, "created_by", path) if data.get("created_by") is not None else None
        creation_date = field.date_time(data, "creation_date", path)
        return cls(
            user=_user(data, "user", path),
            course=_course(data, path),
            mode=field.text(data, "mode", path, required=True),
            is_active=field.boolean(data, "is_active", path),
            creation_date=creation_date,
            created_by=created_by,
        )

    return read


def _read_tracking(data: Mapping[str, Any], path: str) -> OpenedxEvent:
    name = field.text(data, "name", path, required=True)
    if name not in TRACKING_LOGS_READ:
        raise field.Invalid(
            Rejection(
                Outcome.SKIPPED,
                "tracking-log-not-read",
                f"tracking log {name!r} is not one this project reads",
            )
        )
    return TrackingLogEmitted(
        name=name,
        timestamp=field.date_time(data, "timestamp", path),
        data=field.json_object(data, "data", path),
        context=field.json_object(data, "context", path),
    )


_READERS: dict[str, Callable[[Mapping[str, Any], str], OpenedxEvent]] = {
    CohortMembershipChanged.event_type: _read_cohort,
    EnrollmentCreated.event_type: _enrollment_reader(EnrollmentCreated),
    EnrollmentChanged.event_type: _enrollment_reader(EnrollmentChanged),
    UnenrollmentCompleted.event_type: _enrollment_reader(UnenrollmentCompleted),
    TrackingLogEmitted.event_type: _read_tracking,
}


def read_event(event_type: str, data: Mapping[str, Any]) -> OpenedxEvent | Rejection:
    """Read the decoded data of a signal of ``event_type`` (``{data_key: {...}}``, as openedx-events'
    deserializer gives it, course keys as text) into its typed event. A type not in
    :data:`EVENT_CLASSES` is skipped (``event-type-not-read``), as is a tracking log not in
    :data:`TRACKING_LOGS_READ` (``tracking-log-not-read``); a missing or malformed field fails
    (``missing-field``, ``invalid-field``) naming it. Fields the reader does not know are ignored (a newer
    minor version adds some)."""
    cls = EVENT_CLASSES.get(event_type)
    if cls is None:
        return Rejection(
            Outcome.SKIPPED, "event-type-not-read", f"event type {event_type!r} is not one this project reads"
        )
    try:
        if not isinstance(data, Mapping):
            raise field.invalid("the signal data", data, "an object")
        return _READERS[event_type](field.mapping(data, cls.data_key, "signal"), cls.data_key)
    except field.Invalid as invalid:
        return invalid.rejection


def read_message(metadata: EnvelopeMetadata, data: Mapping[str, Any]) -> OpenedxMessage | Rejection:
    """:func:`read_event` for the type the envelope names, with the envelope."""
    event = read_event(metadata.type, data)
    return event if isinstance(event, Rejection) else OpenedxMessage(metadata, event)


def read_metadata(fields: Mapping[str, str | None]) -> EnvelopeMetadata | Rejection:
    """Read an envelope from its text fields (:data:`METADATA_FIELDS`, as the Redis bus names them). Every
    field is required (the Open edX producers always write them; null is missing): ``id`` a UUID, ``time`` ISO 8601
    (UTC when it has no offset), ``minorversion`` a whole number, ``sourcelib`` dotted numbers."""
    try:
        present = {name: value for name, value in fields.items() if value is not None}
        text = {name: field.text(present, name, "metadata") for name in METADATA_FIELDS}
        for name in ("id", "type", "time", "minorversion", "sourcelib"):
            if not text[name].strip():
                raise field.invalid(f"metadata.{name}", text[name], "non-empty text")
        return EnvelopeMetadata(
            id=_parsed(text, "id", lambda value: str(UUID(value)), "a UUID"),
            type=text["type"].strip(),
            source=text["source"],
            time=field.as_utc(_parsed(text, "time", datetime.fromisoformat, "an ISO 8601 date-time")),
            minorversion=_parsed(text, "minorversion", _natural, "a whole number"),
            sourcehost=text["sourcehost"],
            sourcelib=_parsed(text, "sourcelib", _version, "a version (dotted numbers)"),
        )
    except field.Invalid as invalid:
        return invalid.rejection


def _natural(value: str) -> int:
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        raise ValueError(value)
    return int(value)


def _version(value: str) -> tuple[int, ...]:
    return tuple(_natural(part) for part in value.split("."))


def _parsed(text: Mapping[str, str], name: str, parse: Callable[[str], T], expected: str) -> T:
    try:
        return parse(text[name])
    except ValueError:
        raise field.invalid(f"metadata.{name}", text[name], expected) from None


# ---------------------------------------------------------------------------------------- writing


def _user_data(user: LmsUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "is_active": user.is_active,
        "pii": {"username": user.username, "email": user.email, "name": user.name},
    }


def _course_data(course: LmsCourse) -> dict[str, Any]:
    return {
        "course_key": course.course_key,
        "display_name": course.display_name,
        "start": course.start,
        "end": course.end,
    }


def signal_data(event: OpenedxEvent) -> dict[str, Any]:
    """The decoded signal data of ``event`` (the inverse of :func:`read_event`: reading it gives an equal
    event), for writing it to the bus. A tracking log's data and context become JSON text as the LMS writes
    them (``json.dumps``)."""
    body: dict[str, Any]
    if isinstance(event, CohortMembershipChanged):
        body = {
            "user": _user_data(event.user),
            "course": _course_data(event.course),
            "name": event.cohort_name,
        }
    elif isinstance(event, EnrollmentEvent):
        body = {
            "user": _user_data(event.user),
            "course": _course_data(event.course),
            "mode": event.mode,
            "is_active": event.is_active,
            "creation_date": event.creation_date,
            "created_by": None if event.created_by is None else _user_data(event.created_by),
        }
    elif isinstance(event, TrackingLogEmitted):
        body = {
            "name": event.name,
            "timestamp": event.timestamp,
            "data": json.dumps(dict(event.data)),
            "context": json.dumps(dict(event.context)),
        }
    else:
        raise TypeError(f"{type(event).__name__} is not an Open edX event this project writes")
    return {event.data_key: body}
