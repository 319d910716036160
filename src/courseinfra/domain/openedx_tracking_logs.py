"""Typed readings of the tracking logs this project follows (``edx.cohort.*``, ``edx.team.*``), read
from a :class:`~courseinfra.domain.openedx_events.TrackingLogEmitted`'s data (ids, names) and context (the
course), or a reasoned rejection (never an exception), as :mod:`.openedx_events` reads signals.

Each reading has its tracking log's name as ``tracking_log_name`` and a ``key`` as the events have: the
learner's (``"<course key> user:<id>"``) for a membership change, the group's
(``"<course key> cohort:<id>"``, ``"<course key> team:<id>"``) for a change to the group itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from courseinfra.domain import openedx_fields as field
from courseinfra.domain.job_requests import Outcome, Rejection
from courseinfra.domain.openedx_events import TRACKING_LOGS_READ, TrackingLogEmitted, learner_key


@dataclass(frozen=True, kw_only=True)
class TrackingLogReading:
    """Base of the typed readings of tracking logs: ``course_key`` is the course the log is about (its
    context's ``course_id``, or its data's for team logs, which carry it there too)."""

    tracking_log_name: ClassVar[str]
    course_key: str

    @property
    def key(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class CohortCreated(TrackingLogReading):
    """``edx.cohort.created``: a cohort ``cohort_id`` named ``cohort_name`` was created."""

    tracking_log_name: ClassVar[str] = "edx.cohort.created"
    cohort_id: int
    cohort_name: str

    @property
    def key(self) -> str:
        return f"{self.course_key} cohort:{self.cohort_id}"


@dataclass(frozen=True, kw_only=True)
class CohortUserAdded(TrackingLogReading):
    """``edx.cohort.user_added``: learner ``user_id`` was added to cohort ``cohort_id``
    (``cohort_name``)."""

    tracking_log_name: ClassVar[str] = "edx.cohort.user_added"
    cohort_id: int
    cohort_name: str
    user_id: int

    @property
    def key(self) -> str:
        return learner_key(self.course_key, self.user_id)


@dataclass(frozen=True, kw_only=True)
class CohortUserRemoved(TrackingLogReading):
    """``edx.cohort.user_removed``: learner ``user_id`` was removed from cohort ``cohort_id``
    (``cohort_name``), by a move to another cohort or a removal."""

    tracking_log_name: ClassVar[str] = "edx.cohort.user_removed"
    cohort_id: int
    cohort_name: str
    user_id: int

    @property
    def key(self) -> str:
        return learner_key(self.course_key, self.user_id)


@dataclass(frozen=True, kw_only=True)
class TeamCreated(TrackingLogReading):
    """``edx.team.created``: team ``team_id`` was created."""

    tracking_log_name: ClassVar[str] = "edx.team.created"
    team_id: str

    @property
    def key(self) -> str:
        return f"{self.course_key} team:{self.team_id}"


@dataclass(frozen=True, kw_only=True)
class TeamDeleted(TrackingLogReading):
    """``edx.team.deleted``: team ``team_id`` was deleted (the LMS then emits a ``learner_removed`` per
    member, with method ``team_deleted``)."""

    tracking_log_name: ClassVar[str] = "edx.team.deleted"
    team_id: str

    @property
    def key(self) -> str:
        return f"{self.course_key} team:{self.team_id}"


@dataclass(frozen=True, kw_only=True)
class TeamChanged(TrackingLogReading):
    """``edx.team.changed``: one ``field`` of team ``team_id`` changed from ``old`` to ``new`` (as text,
    truncated by the LMS to 100 characters; ``truncated`` names which of ``old`` and ``new`` were)."""

    tracking_log_name: ClassVar[str] = "edx.team.changed"
    team_id: str
    field: str
    old: str | None
    new: str | None
    truncated: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.course_key} team:{self.team_id}"


@dataclass(frozen=True, kw_only=True)
class TeamLearnerAdded(TrackingLogReading):
    """``edx.team.learner_added``: learner ``user_id`` joined team ``team_id``; ``method`` is the
    log's ``add_method`` (``joined_from_team_view``, ``added_by_another_user``, ``team_csv_import``)."""

    tracking_log_name: ClassVar[str] = "edx.team.learner_added"
    team_id: str
    user_id: int
    method: str | None = None

    @property
    def key(self) -> str:
        return learner_key(self.course_key, self.user_id)


@dataclass(frozen=True, kw_only=True)
class TeamLearnerRemoved(TrackingLogReading):
    """``edx.team.learner_removed``: learner ``user_id`` left team ``team_id``; ``method`` is the log's
    ``remove_method`` (``self_removal``, ``removed_by_admin``, ``team_deleted``, ``team_csv_import``)."""

    tracking_log_name: ClassVar[str] = "edx.team.learner_removed"
    team_id: str
    user_id: int
    method: str | None = None

    @property
    def key(self) -> str:
        return learner_key(self.course_key, self.user_id)


def _course_of(log: TrackingLogEmitted) -> str:
    for source, where in ((log.context, "context"), (log.data, "data")):
        value = source.get("course_id")
        if isinstance(value, str) and value.strip():
            return value.strip()
        if value is not None and not isinstance(value, str):
            raise field.invalid(f"tracking_log.{where}.course_id", value, "text")
    raise field.missing("tracking_log.context.course_id")


def _read_cohort_log(log: TrackingLogEmitted, course_key: str) -> TrackingLogReading:
    path = "tracking_log.data"
    cohort_id = field.integer(log.data, "cohort_id", path)
    cohort_name = field.text(log.data, "cohort_name", path, required=True)
    if log.name == CohortCreated.tracking_log_name:
        return CohortCreated(course_key=course_key, cohort_id=cohort_id, cohort_name=cohort_name)
    cls = CohortUserAdded if log.name == CohortUserAdded.tracking_log_name else CohortUserRemoved
    return cls(
        course_key=course_key,
        cohort_id=cohort_id,
        cohort_name=cohort_name,
        user_id=field.integer(log.data, "user_id", path),
    )


def _read_team_log(log: TrackingLogEmitted, course_key: str) -> TrackingLogReading:
    path = "tracking_log.data"
    team_id = field.text(log.data, "team_id", path, required=True)
    if log.name == TeamCreated.tracking_log_name:
        return TeamCreated(course_key=course_key, team_id=team_id)
    if log.name == TeamDeleted.tracking_log_name:
        return TeamDeleted(course_key=course_key, team_id=team_id)
    if log.name == TeamChanged.tracking_log_name:
        truncated = log.data.get("truncated") or []
        if not isinstance(truncated, list) or not all(isinstance(item, str) for item in truncated):
            raise field.invalid(f"{path}.truncated", truncated, "a list of field names")
        return TeamChanged(
            course_key=course_key,
            team_id=team_id,
            field=field.text(log.data, "field", path, required=True),
            old=field.optional_text(log.data, "old", path),
            new=field.optional_text(log.data, "new", path),
            truncated=tuple(truncated),
        )
    if log.name == TeamLearnerAdded.tracking_log_name:
        return TeamLearnerAdded(
            course_key=course_key,
            team_id=team_id,
            user_id=field.integer(log.data, "user_id", path),
            method=field.optional_text(log.data, "add_method", path),
        )
    return TeamLearnerRemoved(
        course_key=course_key,
        team_id=team_id,
        user_id=field.integer(log.data, "user_id", path),
        method=field.optional_text(log.data, "remove_method", path),
    )


def read_tracking_log(log: TrackingLogEmitted) -> TrackingLogReading | Rejection:
    """Read a tracking log into its typed reading, from its data (ids, names) and its context (the
    course). A name not in :data:`TRACKING_LOGS_READ` is skipped (``tracking-log-not-read``); a missing or
    malformed field fails (``missing-field``, ``invalid-field``) naming it (``tracking_log.data.user_id``)."""
    if log.name not in TRACKING_LOGS_READ:
        return Rejection(
            Outcome.SKIPPED,
            "tracking-log-not-read",
            f"tracking log {log.name!r} is not one this project reads",
        )
    try:
        course_key = _course_of(log)
        if log.name.startswith("edx.cohort."):
            return _read_cohort_log(log, course_key)
        return _read_team_log(log, course_key)
    except field.Invalid as invalid:
        return invalid.rejection
