"""The ports of legacy sync: the legacy groups (cohorts, teams, enrollment tracks), the sync log, the
drift found by Open edX events, and the echoes expected of courseinfra's own legacy writes."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from courseinfra.domain.legacy import AssignmentType, Cohort, CohortAddResult, Team, Teamset, Track
from courseinfra.domain.legacy_echoes import ExpectedEcho


@dataclass(frozen=True, slots=True)
class SyncFailure:
    """A linked-group operation that failed on the legacy side: the legacy error, and what could not be
    undone (empty: both sides are as they were before the operation)."""

    id: int
    at: datetime
    group_id: str
    operation: str
    code: str
    message: str
    not_undone: tuple[str, ...] = ()


class SyncLog(abc.ABC):
    """The failures of linked-group operations, for ``sync status``."""

    @abc.abstractmethod
    def add(self, failure: SyncFailure) -> int:
        """Keep a failure; return the id the log gives it (``failure.id`` is ignored)."""

    @abc.abstractmethod
    def list(self, *, after_id: int = 0, limit: int = 100) -> list[SyncFailure]:
        """The failures logged after ``after_id`` (the id of the last one seen), the latest first; with
        more than ``limit``, the latest ``limit`` of them."""

    @abc.abstractmethod
    def count_by_group(self) -> dict[str, int]:
        """How many failures are logged, by group (groups without any are absent)."""


class DriftSide(enum.StrEnum):
    """Where a drifting user is: only in the legacy group (a legacy edit added them) or only in the user
    group (a legacy edit removed them)."""

    ONLY_IN_LEGACY_GROUP = "only-in-legacy-group"
    ONLY_IN_USER_GROUP = "only-in-user-group"


@dataclass(frozen=True, slots=True)
class Drift:
    """A user whose legacy membership an Open edX event showed to differ from a ``user_group``-authority
    link's user group: open until reconciliation pushes the user group's membership (ADR 0022)."""

    group_id: str
    user_id: str
    side: DriftSide
    detected_at: datetime
    origin: str  # what found it: the event type


class DriftLog(abc.ABC):
    """The open drift of links whose user group is the authority, one row per (group, user)."""

    @abc.abstractmethod
    def record(self, group_id: str, sides: Mapping[str, DriftSide], at: datetime, origin: str) -> None:
        """Keep each user's drift (user to side), replacing what was kept for them."""

    @abc.abstractmethod
    def clear(self, group_id: str, user_ids: Sequence[str] | None = None) -> int:
        """Forget the drift of ``user_ids`` of the group (all of it when None); return how many."""

    @abc.abstractmethod
    def list(self, *, group_id: str | None = None, limit: int = 100) -> list[Drift]:
        """The open drift (of one group, or of all), by group then user; at most ``limit`` rows."""

    @abc.abstractmethod
    def count(self) -> int:
        """How many rows of drift are open."""

    @abc.abstractmethod
    def count_by_group(self) -> dict[str, int]:
        """How many rows of drift are open, by group (groups without any are absent)."""


class EchoLog(abc.ABC):
    """The echoes expected of courseinfra's legacy writes (ADR 0022), one row per (group, user)."""

    @abc.abstractmethod
    def expect(self, echoes: Sequence[ExpectedEcho]) -> None:
        """Keep each echo, replacing what was kept for its group and user."""

    @abc.abstractmethod
    def find(self, group_id: str, user_ids: Sequence[str], now: datetime) -> dict[str, ExpectedEcho]:
        """The echoes of ``user_ids`` of the group that have not expired at ``now``, by user."""

    @abc.abstractmethod
    def clear(self, group_id: str, user_ids: Sequence[str] | None = None) -> int:
        """Forget the echoes of ``user_ids`` of the group (all of them when None); return how many."""

    @abc.abstractmethod
    def prune(self, now: datetime, limit: int = 10_000) -> int:
        """Forget up to ``limit`` echoes expired at ``now`` (the oldest expiry first); return how many."""

    @abc.abstractmethod
    def count(self) -> int:
        """How many echoes are kept (expired or not)."""


class LegacyGroups(abc.ABC):
    """The legacy groups (cohorts, teams, enrollment tracks) behind one interface: the local tables, or a
    real Open edX instance over its REST APIs. Every rule breach raises a ``domain.legacy.LegacyError``
    with a stable code; a transport failure raises ``LegacyUnavailable``. Users are named by their user
    id (the Open edX client maps it to the username).

    Operations on several users are all or nothing where the backend allows it (local: one
    transaction); where it cannot (a remote API called per user), a failure raises the error with
    ``details`` naming the users already done, so that the caller can compensate.
    """

    @property
    def joins_transaction(self) -> bool:
        """Whether the operations run inside the unit of work that handed these legacy groups out (the
        local tables, in its database): a rollback then undoes both sides and no undo is needed. A
        remote system's operations are not undone by a rollback: the caller undoes them itself."""
        return False

    def close(self) -> None:  # noqa: B027 - a no-op unless the backend holds connections
        """Release connections (a remote client's)."""

    # --- cohorts ---

    @abc.abstractmethod
    def create_cohort(
        self, course_id: str, name: str, assignment_type: AssignmentType = AssignmentType.MANUAL
    ) -> Cohort: ...

    @abc.abstractmethod
    def get_cohort(self, course_id: str, cohort_id: str) -> Cohort:
        """The cohort with its member count; ``CohortNotFound`` if the course has no such cohort."""

    @abc.abstractmethod
    def list_cohorts(self, course_id: str) -> list[Cohort]: ...

    @abc.abstractmethod
    def update_cohort(
        self,
        course_id: str,
        cohort_id: str,
        *,
        name: str | None = None,
        assignment_type: AssignmentType | None = None,
    ) -> Cohort: ...

    @abc.abstractmethod
    def delete_cohort(self, course_id: str, cohort_id: str) -> None:
        """Always refused: ``NotDeletable`` (``CohortNotFound`` first if there is no such cohort)."""

    @abc.abstractmethod
    def cohort_members(self, course_id: str, cohort_id: str) -> set[str]: ...

    @abc.abstractmethod
    def add_to_cohort(self, course_id: str, cohort_id: str, user_ids: Sequence[str]) -> CohortAddResult:
        """Add users, moving those in another cohort of the course (``moved`` names where from)."""

    @abc.abstractmethod
    def remove_from_cohort(self, course_id: str, cohort_id: str, user_ids: Sequence[str]) -> None:
        """``UserNotInCohort`` (with the users in ``details``) if any is not in the cohort."""

    # --- teams ---

    @abc.abstractmethod
    def list_teamsets(self, course_id: str) -> list[Teamset]: ...

    @abc.abstractmethod
    def create_team(self, course_id: str, teamset_id: str, name: str, description: str = "") -> Team: ...

    @abc.abstractmethod
    def get_team(self, team_id: str) -> Team: ...

    @abc.abstractmethod
    def update_team(
        self, team_id: str, *, name: str | None = None, description: str | None = None
    ) -> Team: ...

    @abc.abstractmethod
    def delete_team(self, team_id: str) -> None:
        """Delete the team and its memberships."""

    @abc.abstractmethod
    def team_members(self, team_id: str) -> set[str]: ...

    @abc.abstractmethod
    def add_to_team(self, team_id: str, user_ids: Sequence[str]) -> list[str]:
        """Add users (those already members are skipped); return the ones added."""

    @abc.abstractmethod
    def remove_from_team(self, team_id: str, user_ids: Sequence[str]) -> None:
        """``UserNotInTeam`` if any is not a member."""

    # --- enrollment tracks ---

    @abc.abstractmethod
    def list_tracks(self, course_id: str) -> list[Track]: ...

    @abc.abstractmethod
    def track_members(self, course_id: str, mode: str) -> set[str]:
        """Users whose active enrolment in the course is in ``mode``."""

    @abc.abstractmethod
    def set_track(self, course_id: str, user_ids: Sequence[str], mode: str) -> dict[str, str]:
        """Change the users' enrolment mode; return each user's previous mode. ``UnknownTrack`` for a
        mode the course does not offer, ``NotEnrolled`` for users not enrolled."""
