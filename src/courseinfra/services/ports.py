"""The ports services depend on. Every port has an embedded and a real implementation in ``adapters``,
and both pass the same contract suite in ``tests/contract``."""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

from courseinfra.domain.cache_layout import CacheValue
from courseinfra.domain.criteria import EvaluationContext, MembershipRule, UserFacts
from courseinfra.domain.events import Event
from courseinfra.domain.groups import UserGroup
from courseinfra.domain.job_requests import Outcome
from courseinfra.domain.legacy import AssignmentType, Cohort, CohortAddResult, Team, Teamset, Track
from courseinfra.domain.progress import (
    AuditAction,
    AuditObject,
    AuditRecord,
    EnrolmentKey,
    EnrolmentState,
    UnitMetrics,
    audit_telemetry,
)
from courseinfra.domain.reports import LearnerRow
from courseinfra.domain.users import User


@dataclass(frozen=True, slots=True)
class StoredHierarchy:
    identifier: str
    mime_type: str
    hierarchy: Mapping[str, Any]
    version: int
    updated_at: datetime
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class ContentSummary:
    """What readers need of a stored root without its hierarchy."""

    identifier: str
    version: int
    published_at: datetime | None
    channel: str | None
    framework: str | None


class HierarchyStore(abc.ABC):
    """The content hierarchies, one per root identifier; every put bumps its version."""

    @abc.abstractmethod
    def put(self, identifier: str, mime_type: str, hierarchy: Mapping[str, Any]) -> int:
        """Store ``hierarchy`` as the latest of ``identifier``; return its new version (1, 2, ...)."""

    @abc.abstractmethod
    def get(self, identifier: str) -> StoredHierarchy | None: ...

    @abc.abstractmethod
    def mark_published(self, identifier: str, at: datetime) -> None: ...

    @abc.abstractmethod
    def summaries(self, identifiers: Sequence[str]) -> dict[str, ContentSummary]:
        """The stored roots among ``identifiers``, in one read, without their hierarchies."""

    @abc.abstractmethod
    def published_ids(self, *, after: str = "", limit: int = 1000) -> list[str]:
        """Identifiers of published hierarchies above ``after``, in ascending order (for paging)."""


@dataclass(frozen=True, slots=True)
class NewFailedEvent:
    job: str
    outcome: Outcome
    code: str
    reason: str
    payload: str
    source: str


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """An event a job did not process, kept with its reason until it is replayed successfully."""

    id: int
    job: str
    outcome: Outcome
    code: str
    reason: str
    payload: str
    source: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime
    resolved_at: datetime | None


class FailedEventStore(abc.ABC):
    """Events the jobs did not process. An event is identified by its job and its payload text: there
    is at most one open (unresolved) entry per job and payload, whatever its outcome."""

    @abc.abstractmethod
    def add(self, event: NewFailedEvent, at: datetime) -> int:
        """Keep ``event`` and return the id of its open entry.

        The first time, a new entry with one attempt. While an entry of the same job and payload is
        open, that entry instead: one more attempt, and the outcome, code, reason, source and
        ``last_attempt_at`` of this time (its id and ``created_at`` stay). A resolved entry absorbs
        nothing: the same payload kept after its resolution opens a new entry."""

    @abc.abstractmethod
    def get(self, event_id: int) -> FailedEvent | None: ...

    @abc.abstractmethod
    def list(
        self,
        *,
        job: str | None = None,
        outcomes: Sequence[Outcome] = (Outcome.FAILED,),
        include_resolved: bool = False,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[FailedEvent]:
        """Events in ascending id order, after ``after_id`` (for paging)."""

    @abc.abstractmethod
    def record_attempt(self, event_id: int, *, at: datetime, resolved: bool, code: str, reason: str) -> None:
        """Count a replay: resolved, or still failing with ``code`` and ``reason``."""

    @abc.abstractmethod
    def count_open(self) -> dict[str, int]:
        """Unresolved failed (not skipped) events, by job."""

    @abc.abstractmethod
    def last_id(self) -> int:
        """The highest id kept so far (0 when none): a new entry has a higher id (an event kept again
        while its entry is open keeps that entry's id)."""


class CounterStore(abc.ABC):
    """Cumulative counters per job, added to in the same transaction as the work they count."""

    @abc.abstractmethod
    def add(self, job: str, counts: Mapping[str, int]) -> None:
        """Add ``counts`` to the job's counters, in counter-name order (so that writers adding jobs in
        name order too never wait for each other in a cycle)."""

    @abc.abstractmethod
    def all(self) -> dict[str, dict[str, int]]: ...


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    event_type: str
    key: str
    payload: Mapping[str, Any]
    attempts: int


class Outbox(abc.ABC):
    """Events committed with the state change that caused them, relayed to the bus after commit."""

    @abc.abstractmethod
    def add(self, events: Sequence[Event], at: datetime) -> None: ...

    @abc.abstractmethod
    def pending(self, limit: int = 100, after_id: int = 0) -> list[OutboxMessage]:
        """Unrelayed messages with an id above ``after_id``, oldest first."""

    @abc.abstractmethod
    def mark_relayed(self, message_ids: Sequence[int], at: datetime) -> None: ...

    @abc.abstractmethod
    def mark_attempt_failed(self, message_id: int, error: str) -> None: ...

    @abc.abstractmethod
    def prune_relayed(self, before: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` messages relayed before ``before`` (never a pending one); return how
        many."""


@dataclass(frozen=True, slots=True)
class CourseBatch:
    batch_id: str
    course_id: str
    name: str
    created_at: datetime
    description: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    enrollment_end_date: date | None = None
    enrollment_type: str = "open"
    status: int = 1
    created_for: tuple[str, ...] = ()
    mentors: tuple[str, ...] = ()
    created_by: str | None = None


class BatchStore(abc.ABC):
    @abc.abstractmethod
    def add(self, batch: CourseBatch) -> None:
        """Store a new batch; raises :class:`AlreadyExists` if its id is taken."""

    @abc.abstractmethod
    def get(self, batch_id: str) -> CourseBatch | None: ...

    @abc.abstractmethod
    def ongoing(self, as_of: date) -> list[CourseBatch]:
        """Every batch whose end date is empty or not before ``as_of`` (see ``domain.reports.is_ongoing``),
        by batch id."""

    @abc.abstractmethod
    def list(
        self, *, course_id: str | None = None, after: str = "", limit: int = 100
    ) -> list[CourseBatch]: ...


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A row of ``user_enrolments``: the aggregator's state plus what enrolment itself records."""

    state: EnrolmentState
    active: bool
    enrolled_date: datetime
    added_by: str | None = None
    certificates: tuple[Mapping[str, Any], ...] = ()
    mode: str = "audit"

    @property
    def key(self) -> EnrolmentKey:
        return self.state.key


class EnrolmentStore(abc.ABC):
    @abc.abstractmethod
    def add(self, enrolment: Enrolment) -> bool:
        """Enrol; return False (and change nothing) if the enrolment exists."""

    @abc.abstractmethod
    def set_active(self, key: EnrolmentKey, active: bool, at: datetime, *, mode: str | None = None) -> bool:
        """Set ``active`` (and the mode, when given); return False if there is no such enrolment."""

    @abc.abstractmethod
    def get_many(
        self, keys: Sequence[EnrolmentKey], *, for_update: bool = False
    ) -> dict[EnrolmentKey, Enrolment]:
        """The enrolments that exist among ``keys``, in one read. ``for_update``: the caller will write
        them back; no other unit of work changes them until this one ends (their rows are locked in key
        order, so that two writers of overlapping keys never deadlock)."""

    @abc.abstractmethod
    def save_progress(self, states: Sequence[EnrolmentState]) -> None:
        """Write the aggregator's columns of existing enrolments, in one bulk write."""

    @abc.abstractmethod
    def list_for_user(self, user_id: str) -> list[Enrolment]: ...

    @abc.abstractmethod
    def list_for_batch(
        self, batch_id: str, *, after_user: str = "", limit: int = 1000, for_update: bool = False
    ) -> list[Enrolment]:
        """A page of a batch's enrolments in user order; ``for_update`` as in :meth:`get_many`."""


class ActivityStore(abc.ABC):
    @abc.abstractmethod
    def upsert(self, metrics: Sequence[UnitMetrics], at: datetime) -> None: ...

    @abc.abstractmethod
    def for_user(self, user_id: str, context_id: str) -> list[UnitMetrics]: ...


class AuditEntry(NamedTuple):
    """An emitted AUDIT event as the log keeps it: its key's fields (the object type and the action as
    their values), the course's channel and the emission time (``ets``: the same in milliseconds). A
    tuple: the relay reads millions of them."""

    id: int
    user_id: str
    course_id: str
    batch_id: str
    object_type: str
    object_id: str
    action: str
    channel: str | None
    emitted_at: datetime
    ets: int

    @property
    def record(self) -> AuditRecord:
        return AuditRecord(
            EnrolmentKey(self.user_id, self.course_id, self.batch_id),
            AuditObject(self.object_type),
            self.object_id,
            AuditAction(self.action),
        )

    @property
    def telemetry(self) -> dict[str, Any]:
        """The event in the telemetry v3 AUDIT shape, the same on every read."""
        return audit_telemetry(
            self.user_id,
            self.course_id,
            self.batch_id,
            self.object_type,
            self.object_id,
            self.action,
            self.ets,
            self.channel,
        )


class AuditLog(abc.ABC):
    """The AUDIT events emitted, in commit order, appended in the transaction of the state transitions
    that emitted them (what makes each emitted once is the enrolment's state, not this log).

    The log is also the AUDIT events' outbox: entry ids grow in commit order, so a reader that has seen
    every entry up to id N never sees a later commit with an id at or below N, and a relay needs only a
    cursor (see :class:`RelayCursors`), not a mark per entry. Ids are not dense.
    """

    @abc.abstractmethod
    def append(self, records: Sequence[tuple[AuditRecord, str | None]], at: datetime) -> None:
        """Append the records (each with its course's channel), in order."""

    @abc.abstractmethod
    def read_after(self, after_id: int, at_least: int) -> list[AuditEntry]:
        """The entries after ``after_id`` in id order: at least ``at_least`` where there are so many,
        and as many more as end the page last read (an append writes a page per course): what a relay
        delivers at a time."""

    @abc.abstractmethod
    def prune(self, *, through_id: int, before: datetime, limit: int = 100) -> int:
        """Delete up to ``limit`` appends, each with every entry at or before ``through_id`` (the relay's
        cursor) and made before ``before``; return how many entries were deleted."""

    @abc.abstractmethod
    def list(
        self,
        *,
        user_id: str | None = None,
        course_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """At most ``limit`` entries after ``after_id`` in id order, of the user and the course given.
        Filtering by user reads every entry kept (of the course, where one is given)."""


@dataclass(frozen=True, slots=True)
class RelayCursor:
    """How far a relay has delivered an ordered stream, and its last failure if the next entry failed."""

    name: str
    position: int
    attempts: int = 0
    last_error: str | None = None
    updated_at: datetime | None = None


class RelayCursors(abc.ABC):
    """Positions of the relays of ordered streams (the AUDIT log), one row per relay."""

    @abc.abstractmethod
    def get(self, name: str) -> RelayCursor:
        """The cursor ``name``; position 0 when it was never moved."""

    @abc.abstractmethod
    def advance(self, name: str, position: int, at: datetime) -> None:
        """Move ``name`` to ``position`` and clear its failure."""

    @abc.abstractmethod
    def record_failure(self, name: str, error: str, at: datetime) -> None:
        """Keep the error of the entry after the cursor's position, and count the attempt."""


class ReportReader(abc.ABC):
    """The rows of a batch's progress report, read in pages so that a batch never sits in memory."""

    @abc.abstractmethod
    def learners(
        self, batch_id: str, unit_ids: Sequence[str], *, after_user: str = "", limit: int = 1000
    ) -> list[LearnerRow]:
        """The enrolments of ``batch_id`` with a user id above ``after_user``, by user id, each with the
        directory's name and email and its progress in each of ``unit_ids`` (0 where never touched)."""


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ReportRun:
    """One generation of reports for a date: its progress while it runs, what it did when it ends."""

    run_id: str
    as_of: date
    status: RunStatus
    started_at: datetime
    requested_batches: tuple[str, ...] = ()
    batches_total: int = 0
    batches_done: int = 0
    rows_written: int = 0
    finished_at: datetime | None = None
    error: str | None = None
    outcome: Mapping[str, Any] = field(default_factory=dict)


class ReportRuns(abc.ABC):
    """Report runs, so that any process (the CLI, the API) sees a run's status."""

    @abc.abstractmethod
    def add(self, run: ReportRun) -> None: ...

    @abc.abstractmethod
    def save(self, run: ReportRun) -> None:
        """Replace the stored run of the same id with ``run``."""

    @abc.abstractmethod
    def get(self, run_id: str) -> ReportRun | None: ...

    @abc.abstractmethod
    def list(self, *, limit: int = 50) -> list[ReportRun]:
        """The latest runs first."""


class ReportFile(abc.ABC):
    """A report file being written; nothing of it is visible before its run is published."""

    @abc.abstractmethod
    def write_row(self, row: Sequence[Any]) -> None: ...


class ReportDraft(abc.ABC):
    """The files of one run, written aside and made visible all at once by :meth:`publish`."""

    @abc.abstractmethod
    def csv(self, name: str) -> AbstractContextManager[ReportFile]:
        """A CSV file of the run, written row by row."""

    @abc.abstractmethod
    def write_text(self, name: str, text: str) -> None: ...

    @abc.abstractmethod
    def publish(self) -> None:
        """Make the run's files the reports of its date, replacing an earlier run's in one step."""

    @abc.abstractmethod
    def discard(self) -> None:
        """Remove what the run wrote; the date's published reports stay as they were."""


class ReportArchive(abc.ABC):
    """Where report files live: per run, and per date the files of its latest published run."""

    @abc.abstractmethod
    def draft(self, run_id: str, as_of: date) -> ReportDraft: ...

    @abc.abstractmethod
    def files(self, run_id: str) -> list[str]:
        """The names of a run's files (none for an unknown run)."""

    @abc.abstractmethod
    def path(self, run_id: str, name: str) -> Path | None:
        """The local path of one file of a run, or None."""

    @abc.abstractmethod
    def published_run(self, as_of: date) -> str | None:
        """The run whose files are the reports of ``as_of``, if any."""


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """One join or leave of a group's history."""

    id: int
    group_id: str
    user_id: str
    change: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    joined_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What a refresh or a preview found: who joins and who leaves (ids capped at ``sample`` in a
    preview), and the member count after it."""

    joined: int
    left: int
    member_count: int
    joined_ids: tuple[str, ...] = ()
    left_ids: tuple[str, ...] = ()


class UserGroupStore(abc.ABC):
    """Group definitions and their manual overrides."""

    @abc.abstractmethod
    def add(self, group: UserGroup) -> None:
        """Store a new group; :class:`AlreadyExists` if its id, or its name in its scope, is taken."""

    @abc.abstractmethod
    def get(self, group_id: str, *, for_update: bool = False) -> UserGroup | None:
        """The group; ``for_update`` locks it until the transaction ends (refreshes and changes of one
        group are serialised)."""

    @abc.abstractmethod
    def save(self, group: UserGroup) -> None:
        """Replace the stored definition (its version was checked by the caller, under the lock)."""

    @abc.abstractmethod
    def record_refresh(self, group_id: str, member_count: int, at: datetime) -> None:
        """Keep a refresh's outcome on the group (its version is unchanged: the definition is)."""

    @abc.abstractmethod
    def delete(self, group_id: str) -> bool:
        """Delete the group, its overrides, members and history; False if it did not exist."""

    @abc.abstractmethod
    def all(self) -> list[UserGroup]:
        """Every group, by id (groups are few: hundreds, not millions)."""

    @abc.abstractmethod
    def overrides(self, group_id: str) -> tuple[frozenset[str], frozenset[str]]:
        """(include, exclude) user ids."""

    @abc.abstractmethod
    def set_overrides(self, group_id: str, include: Sequence[str], exclude: Sequence[str]) -> None:
        """Replace both lists (a user in both is excluded: the caller refuses that)."""


class Memberships(abc.ABC):
    """Stored membership, changed only by difference, with its history."""

    @abc.abstractmethod
    def refresh(
        self,
        group: UserGroup,
        rule: MembershipRule,
        context: EvaluationContext,
        *,
        reason: str,
        only_users: Sequence[str] | None = None,
    ) -> RefreshResult:
        """Evaluate ``rule`` (over every user, or only ``only_users``) and write the joins and leaves,
        each with a history row; return the counts."""

    @abc.abstractmethod
    def preview(
        self,
        group: UserGroup,
        rule: MembershipRule,
        context: EvaluationContext,
        *,
        sample: int = 100,
    ) -> RefreshResult:
        """What :meth:`refresh` would change, writing nothing."""

    @abc.abstractmethod
    def members(self, group_id: str, *, after: str = "", limit: int = 100) -> list[Member]: ...

    @abc.abstractmethod
    def history(
        self, group_id: str, *, user_id: str | None = None, after_id: int = 0, limit: int = 100
    ) -> list[MembershipChange]: ...

    @abc.abstractmethod
    def is_member(self, group_id: str, user_id: str) -> bool: ...


class GroupFacts(abc.ABC):
    """What criteria read of users, for the plain Python evaluation."""

    @abc.abstractmethod
    def load(self, user_ids: Sequence[str]) -> dict[str, UserFacts]:
        """Facts of the users that exist among ``user_ids`` (directory users only)."""


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
    def add(self, failure: SyncFailure) -> int: ...

    @abc.abstractmethod
    def list(self, *, after_id: int = 0, limit: int = 100) -> list[SyncFailure]:
        """The latest failures first."""


class LegacyGroups(abc.ABC):
    """The legacy groups (cohorts, teams, enrollment tracks) behind one interface: the local tables, or a
    real Open edX instance over its REST APIs. Every rule breach raises a ``domain.legacy.LegacyError``
    with a stable code; a transport failure raises ``LegacyUnavailable``. Users are named by their user
    id (the Open edX client maps it to the username).

    Operations on several users are all or nothing where the backend allows it (local: one
    transaction); where it cannot (a remote API called per user), a failure raises the error with
    ``details`` naming the users already done, so that the caller can compensate.
    """

    def within(self, uow: UnitOfWork) -> LegacyGroups | None:
        """The same legacy groups with their operations inside ``uow``'s transaction, when they live in
        its database (then a failure rolls both sides back, and no undo is needed); None for a remote
        system, whose operations the caller must undo itself."""
        return None

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


class AlreadyExists(Exception):
    """A unique key is taken."""


class Contention(Exception):
    """A unit of work lost to a concurrent writer (a deadlock, a serialization failure, the write lock
    not granted in time) and was rolled back: nothing it did is kept, and running it again is safe."""


class Locks(abc.ABC):
    """Named locks across every process on one database: at most one holder of a name at a time, a
    waiting caller blocks until it is free, and a holder that dies (even killed) releases it. Re-entrant
    within a thread."""

    @abc.abstractmethod
    def hold(self, name: str) -> AbstractContextManager[None]: ...

    def close(self) -> None:  # noqa: B027 - a no-op unless the locks hold a connection
        """Release connections."""


class UnitOfWork(abc.ABC):
    """One transaction over the stores. Events recorded with :meth:`record` are written to the outbox by
    :meth:`commit`, in the same transaction, as the AUDIT events given to :meth:`record_audit` are to the
    AUDIT log; leaving the block without committing rolls back. A block that lost to a concurrent writer
    leaves with :class:`Contention` (see :func:`courseinfra.services.transactions.retrying`).

    ``on_publish`` (set by whoever builds the unit of work) is called once the block has closed after a
    commit that wrote events or AUDIT events, outside the transaction: the application relays them then
    (:class:`courseinfra.services.messagebus.Publication`), so no caller relays by hand."""

    hierarchies: HierarchyStore
    failed_events: FailedEventStore
    counters: CounterStore
    outbox: Outbox
    batches: BatchStore
    enrolments: EnrolmentStore
    activity: ActivityStore
    audits: AuditLog
    users: UserDirectory
    cursors: RelayCursors
    reports: ReportReader
    report_runs: ReportRuns
    groups: UserGroupStore
    memberships: Memberships
    group_facts: GroupFacts
    sync_log: SyncLog

    def __init__(self, on_publish: Callable[[], None] | None = None) -> None:
        self._recorded: list[Event] = []
        self._audited = False
        self._published = False
        self.on_publish = on_publish
        self.read_only = False

    def reading(self) -> Self:
        """This unit of work only reads: it sees a consistent snapshot and never waits for writers (on
        SQLite it takes no write lock). Call before entering it."""
        self.read_only = True
        return self

    def __enter__(self) -> Self:
        self._recorded = []
        self._audited = False
        self._published = False
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.rollback()

    def record(self, *events: Event) -> None:
        self._recorded.extend(events)

    def record_audit(self, records: Sequence[tuple[AuditRecord, str | None]], at: datetime) -> None:
        """Append AUDIT events (each with its course's channel) to the log, in this transaction."""
        if records:
            self.audits.append(records, at)
            self._audited = True

    def commit(self, at: datetime | None = None) -> None:
        publishes = self._audited
        if self._recorded:
            self.outbox.add(self._recorded, at or datetime.now(UTC))
            self._recorded = []
            publishes = True
        self._commit()
        self._audited = False
        self._published = self._published or publishes

    def _publish_if_committed(self, exc: BaseException | None) -> None:
        """Hand what the block committed to ``on_publish``; for implementations, at the very end of
        ``__exit__``, once the connection is given back."""
        if exc is None and self._published and self.on_publish is not None:
            self._published = False
            self.on_publish()

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ReplaceResult:
    written: int
    deleted: int


class RelationCache(abc.ABC):
    """A key-value cache of sets, lists and strings whose keys are owned by a root.

    :meth:`replace_owned` makes ``entries`` the complete content of an owner in one atomic step: a reader
    sees all the old entries or all the new ones, and keys of the owner's previous content that are not
    in ``entries`` are deleted, unless another owner still claims them.
    """

    @abc.abstractmethod
    def replace_owned(self, owner: str, entries: Mapping[str, CacheValue]) -> ReplaceResult: ...

    @abc.abstractmethod
    def get(self, key: str) -> CacheValue | None: ...

    def get_many(self, keys: Sequence[str]) -> dict[str, CacheValue | None]:
        return {key: self.get(key) for key in keys}

    @abc.abstractmethod
    def owned_keys(self, owner: str) -> frozenset[str]: ...

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every key this cache wrote (for tests and for a full rebuild)."""

    def close(self) -> None:  # noqa: B027 - a no-op unless the cache holds a connection
        """Release connections."""


Handler = Callable[[OutboxMessage], None]


class EventBus(abc.ABC):
    """Delivers relayed outbox messages to the handlers subscribed to their event type."""

    @abc.abstractmethod
    def subscribe(self, event_type: str, handler: Handler) -> None: ...

    @abc.abstractmethod
    def publish(self, message: OutboxMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry of an event stream: its position (opaque, increasing within the stream) and the
    message."""

    position: str
    message: OutboxMessage


class EventStream(abc.ABC):
    """Where relayed events leave the process for downstream consumers (certificate issuing, the
    telemetry pipeline, ...): one stream per event type, in relay order.

    ``append`` is all or nothing. A relay appends a page of messages before it moves its cursor or marks
    them relayed, so delivery is at least once: after a crash in between, the page is appended again
    with the same message ids (the outbox id, or the AUDIT entry id with the telemetry's ``mid``), by
    which consumers drop repeats. Each stream keeps its newest ``max_length`` entries.
    """

    @abc.abstractmethod
    def append(self, messages: Sequence[OutboxMessage]) -> None: ...

    @abc.abstractmethod
    def read(self, event_type: str, *, after: str | None = None, limit: int = 100) -> list[StreamEntry]:
        """Entries of one stream, oldest first, after the position ``after`` (from the first kept entry
        when None)."""

    @abc.abstractmethod
    def close(self) -> None: ...


@dataclass
class JobCounters:
    """Counts of one run of a job; added to the cumulative :class:`CounterStore`."""

    counts: dict[str, int] = field(default_factory=dict)
    #: The job added these counts to the store in its own transaction: the caller adds them no more.
    stored: bool = False

    def inc(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self.counts.items())


# --- the user directory -----------------------------------------------------------------------------


class UserDirectory(abc.ABC):
    """The users of the platform, one per user id, shared by course reports and user groups.

    Timestamps are aware and compared in UTC. ``updated_at`` moves when an import or a profile update
    changes a user; a login moves ``last_login_at`` only.
    """

    @abc.abstractmethod
    def upsert_many(self, users: Sequence[User], at: datetime) -> tuple[int, int]:
        """Insert new users and replace the fields of existing ones, in bulk; return (inserted, updated).

        A user whose fields are all as stored is neither (and keeps its ``updated_at``). ``created_at`` is
        kept, and ``last_login_at`` never moves back (a record without one keeps the stored one). Raises
        :class:`~courseinfra.domain.users.UsernameTaken`, before writing anything, if a username is held
        by a user id that is not in ``users`` or is given to two users of ``users``; usernames that move
        between users of ``users`` (a swap) are fine.
        """

    @abc.abstractmethod
    def get(self, user_id: str) -> User | None: ...

    @abc.abstractmethod
    def get_many(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The users that exist among ``user_ids``, by id."""

    @abc.abstractmethod
    def list(self, *, after: str = "", limit: int = 100, organisation: str | None = None) -> list[User]:
        """Users with an id above ``after``, in ascending id order (for paging), optionally of one
        organisation."""

    @abc.abstractmethod
    def count(self) -> int: ...

    @abc.abstractmethod
    def record_login(self, user_id: str, at: datetime) -> bool:
        """Move the user's ``last_login_at`` to ``at`` if it is later; return whether it moved (False for
        an unknown user, and for a login at or before the recorded one)."""

    @abc.abstractmethod
    def update_profile(self, user_id: str, fields: Mapping[str, str | None], at: datetime) -> User | None:
        """Set profile fields (None removes one) and return the user as stored after it, or None if there
        is no such user. ``updated_at`` moves to ``at`` only if the profile changed."""
