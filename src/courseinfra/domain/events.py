"""Domain events: frozen, versioned contracts, each with a ``key`` that orders and partitions it.

An event type is named ``courseinfra.<area>.<subject>.<verb>.v<N>``; a change that breaks a reader gets a
new type (``.v2``), never a changed ``.v1``. Fields are documented where they are declared.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every domain event. ``occurred_at`` is when the fact became true (UTC)."""

    event_type: ClassVar[str]
    occurred_at: datetime = field(default_factory=_now)

    @property
    def key(self) -> str:
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        """The event's fields as JSON-ready values. A shallow copy: ``dataclasses.asdict`` would deep-copy
        every nested document (an AUDIT event's telemetry), which cost more than the rest of the job."""
        data = {name: getattr(self, name) for name in _field_names(type(self))}
        data["occurred_at"] = self.occurred_at.isoformat()
        return data


_FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {}


def _field_names(event_type: type[Event]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(event_type)
    if names is None:
        names = _FIELD_NAMES[event_type] = tuple(item.name for item in fields(event_type))
    return names


@dataclass(frozen=True, kw_only=True)
class ContentPublished(Event):
    """A content hierarchy was published and its post-publish processing is due.

    - ``identifier``: the published root (the event's key);
    - ``mime_type``: the root's mimeType; only collections have relations to cache;
    - ``content_type``: the root's contentType (``Course``, ``TextBook``, ...), where known;
    - ``version``: the hierarchy store's version of the published hierarchy.
    """

    event_type: ClassVar[str] = "courseinfra.content.hierarchy.published.v1"
    identifier: str
    mime_type: str
    content_type: str | None = None
    name: str | None = None
    channel: str | None = None
    version: int = 1

    @property
    def key(self) -> str:
        return self.identifier

    def job_request(self) -> dict[str, Any]:
        """The Sunbird post-publish job request (BE_JOB_REQUEST) that announces this publication."""
        ets = int(self.occurred_at.timestamp() * 1000)
        return {
            "eid": "BE_JOB_REQUEST",
            "ets": ets,
            "mid": f"LP.{ets}.{self.identifier}.{self.version}",
            "actor": {"id": "Post Publish Processor", "type": "System"},
            "context": {"channel": self.channel, "pdata": {"id": "org.sunbird.platform", "ver": "1.0"}},
            "object": {"id": self.identifier, "ver": str(self.version)},
            "edata": {
                "action": "post-publish-process",
                "iteration": 1,
                "identifier": self.identifier,
                "mimeType": self.mime_type,
                "contentType": self.content_type,
                "name": self.name,
                "pkgVersion": self.version,
            },
        }


@dataclass(frozen=True, kw_only=True)
class RelationCacheUpdated(Event):
    """The relation cache of a root now holds its latest published hierarchy.

    - ``root_id``: the root (the event's key);
    - ``leaf_count``: distinct leaves under the root;
    - ``keys_written`` / ``keys_deleted``: cache keys written, and keys of the previous publication
      that no longer exist and were removed.
    """

    event_type: ClassVar[str] = "courseinfra.content.relation_cache.updated.v1"
    root_id: str
    leaf_count: int
    keys_written: int
    keys_deleted: int

    @property
    def key(self) -> str:
        return self.root_id


@dataclass(frozen=True, kw_only=True)
class AuditEventEmitted(Event):
    """An AUDIT telemetry event (v3 shape) the course metrics aggregator emitted, once per enrolment,
    object and action.

    - ``user_id``: the learner (the event's key, so that one learner's events stay in order);
    - ``telemetry``: the AUDIT event itself (``eid`` AUDIT, ``object``, ``edata.type``, ...).
    """

    event_type: ClassVar[str] = "courseinfra.learning.audit.emitted.v1"
    user_id: str
    telemetry: dict[str, Any]

    @property
    def key(self) -> str:
        return self.user_id

    @staticmethod
    def payload_of(user_id: str, telemetry: dict[str, Any], occurred_at: str) -> dict[str, Any]:
        """``AuditEventEmitted(user_id=..., telemetry=..., occurred_at=...).payload()`` built directly
        (``occurred_at`` already in ISO format), for the relay of millions of events."""
        return {"occurred_at": occurred_at, "user_id": user_id, "telemetry": telemetry}


@dataclass(frozen=True, kw_only=True)
class CertificateRequested(Event):
    """A learner completed a course in a batch: downstream certificate issuing may start. Emitted once
    per enrolment, with the Course ``complete`` AUDIT event.

    - ``user_id`` (the key), ``course_id``, ``batch_id``: the enrolment;
    - ``completed_on``: when the enrolment was first marked complete.
    """

    event_type: ClassVar[str] = "courseinfra.learning.certificate.requested.v1"
    user_id: str
    course_id: str
    batch_id: str
    completed_on: str

    @property
    def key(self) -> str:
        return self.user_id

    def job_request(self) -> dict[str, Any]:
        """The Sunbird-style ``issue-certificate`` job request."""
        return {
            "eid": "BE_JOB_REQUEST",
            "edata": {
                "action": "issue-certificate",
                "iteration": 1,
                "batchId": self.batch_id,
                "courseId": self.course_id,
                "userIds": [self.user_id],
                "reIssue": False,
            },
        }


@dataclass(frozen=True, kw_only=True)
class EnrolmentChanged(Event):
    """A user was enrolled in a batch, enrolled again, or left it.

    - ``user_id`` (the key), ``course_id``, ``batch_id``: the enrolment;
    - ``active``: false when the user left the batch;
    - ``mode``: the enrolment's mode (track): audit, verified, ...
    """

    event_type: ClassVar[str] = "courseinfra.learning.enrolment.changed.v1"
    user_id: str
    course_id: str
    batch_id: str
    active: bool
    mode: str

    @property
    def key(self) -> str:
        return self.user_id


@dataclass(frozen=True, kw_only=True)
class ProgressUpdated(Event):
    """The course metrics aggregator updated the progress of these enrolments (one event per processed
    micro-batch, so that readers such as group refresh do not cost a row per enrolment).

    - ``batch_ids``: the batches of the updated enrolments (the key is the first one);
    - ``user_ids``: the learners whose progress changed, each once.
    """

    event_type: ClassVar[str] = "courseinfra.learning.progress.updated.v1"
    batch_ids: list[str]
    user_ids: list[str]

    @property
    def key(self) -> str:
        return self.batch_ids[0] if self.batch_ids else ""


@dataclass(frozen=True, kw_only=True)
class GroupMembershipChanged(Event):
    """A user group's membership changed: users joined or left it (the history table holds who).

    - ``group_id``: the group (the key);
    - ``joined``, ``left``: how many users joined and left;
    - ``trigger``: what refreshed it (``on-demand``, ``schedule``, ``event:<type>``, ``import``).
    """

    event_type: ClassVar[str] = "courseinfra.groups.membership.changed.v1"
    group_id: str
    joined: int
    left: int
    trigger: str

    @property
    def key(self) -> str:
        return self.group_id


@dataclass(frozen=True, kw_only=True)
class UserLoggedIn(Event):
    """A user logged in later than the directory knew: their ``last_login_at`` moved forward. A login
    reported late (at or before the recorded one) changes nothing and records no event.

    - ``user_id``: the user (the event's key);
    - ``logged_in_at``: when they logged in (ISO 8601, UTC), also the event's ``occurred_at``.
    """

    event_type: ClassVar[str] = "courseinfra.user.login.recorded.v1"
    user_id: str
    logged_in_at: str

    @property
    def key(self) -> str:
        return self.user_id


@dataclass(frozen=True, kw_only=True)
class UserProfileChanged(Event):
    """A user's profile fields changed (by a profile update, or by an import, a new user's included).

    - ``user_id``: the user (the event's key);
    - ``changed``: each field that changed, to its new value, or to null if it was removed;
    - ``profile``: the complete profile after the change (so that a reader needs no lookup).
    """

    event_type: ClassVar[str] = "courseinfra.user.profile.changed.v1"
    user_id: str
    changed: dict[str, str | None]
    profile: dict[str, str]

    @property
    def key(self) -> str:
        return self.user_id


@dataclass(frozen=True, kw_only=True)
class UserDirectoryChanged(Event):
    """A user's directory fields that criteria read changed (by an import; a new user's included): the
    staff flag and the organisation.

    - ``user_id``: the user (the event's key);
    - ``changed``: each of ``is_staff`` and ``organisation`` that changed, to its new value.
    """

    event_type: ClassVar[str] = "courseinfra.user.directory.changed.v1"
    user_id: str
    changed: dict[str, bool | str | None]

    @property
    def key(self) -> str:
        return self.user_id
