"""The unit of work over every feature's stores, the named locks, and the errors stores raise.

Every port has an embedded and a real implementation in ``adapters``, and both pass the same contract
suite in ``tests/contract``."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from courseinfra.domain.events import Event
from courseinfra.domain.progress import (
    AuditRecord,
)
from courseinfra.domain.trail import Change
from courseinfra.services.trail.actors import current_actor

if TYPE_CHECKING:
    from courseinfra.services.access.ports import TokenStore
    from courseinfra.services.audit.ports import AuditLog
    from courseinfra.services.content.ports import HierarchyStore
    from courseinfra.services.enrolments.ports import ActivityStore, BatchStore, EnrolmentStore
    from courseinfra.services.events.ports import CounterStore, Outbox, RelayCursors
    from courseinfra.services.failed_events.ports import FailedEventStore
    from courseinfra.services.groups.ports import GroupFacts, Memberships, UserGroupStore
    from courseinfra.services.openedx.ports import AppliedEvents
    from courseinfra.services.reports.ports import ReportReader, ReportRuns
    from courseinfra.services.sync.ports import DriftLog, EchoLog, LegacyGroups, SyncLog
    from courseinfra.services.trail.ports import ChangeTrail
    from courseinfra.services.users.ports import UserDirectory


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
    (:class:`courseinfra.services.messagebus.Publication`), so no caller relays by hand. ``on_count``
    likewise is called after a commit that added to the job counters (the counter store tells the unit
    of work by :meth:`counted`): the application samples the counters then, at most every few seconds
    (:class:`courseinfra.services.monitoring.CounterSampler`, ADR 0025)."""

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
    drift: DriftLog
    echoes: EchoLog
    tokens: TokenStore
    trail: ChangeTrail
    openedx_events: AppliedEvents
    #: The legacy groups, in this unit of work's transaction when they live in its database.
    legacy: LegacyGroups

    def __init__(
        self, on_publish: Callable[[], None] | None = None, on_count: Callable[[], None] | None = None
    ) -> None:
        self._recorded: list[Event] = []
        self._changes: list[Change] = []
        self._audited = False
        self._published = False
        self._counting = False
        self._counted = False
        self.on_publish = on_publish
        self.on_count = on_count
        self.read_only = False

    def reading(self) -> Self:
        """This unit of work only reads: it sees a consistent snapshot and never waits for writers (on
        SQLite it takes no write lock). Call before entering it."""
        self.read_only = True
        return self

    def __enter__(self) -> Self:
        self._recorded = []
        self._changes = []
        self._audited = False
        self._published = False
        self._counting = False
        self._counted = False
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.rollback()

    def record(self, *events: Event) -> None:
        self._recorded.extend(events)

    def counted(self) -> None:
        """Called by the counter store when this transaction added to the job counters."""
        self._counting = True

    def note(self, action: str, target: str, **detail: Any) -> None:
        """Note a change for the trail: :meth:`commit` writes it, with the current actor
        (:func:`courseinfra.services.trail.current_actor`), in the same transaction."""
        self._changes.append(Change(action, target, detail))

    def record_audit(self, records: Sequence[tuple[AuditRecord, str | None]], at: datetime) -> None:
        """Append AUDIT events (each with its course's channel) to the log, in this transaction."""
        if records:
            self.audits.append(records, at)
            self._audited = True

    def commit(self, at: datetime | None = None) -> None:
        if self._changes:
            self.trail.add(self._changes, current_actor(), at or datetime.now(UTC))
            self._changes = []
        publishes = self._audited
        if self._recorded:
            self.outbox.add(self._recorded, at or datetime.now(UTC))
            self._recorded = []
            publishes = True
        self._commit()
        self._audited = False
        self._published = self._published or publishes
        self._counted = self._counted or self._counting
        self._counting = False

    def _publish_if_committed(self, exc: BaseException | None) -> None:
        """Hand what the block committed to ``on_count`` and ``on_publish``; for implementations, at the
        very end of ``__exit__``, once the connection is given back."""
        if exc is None and self._counted and self.on_count is not None:
            self._counted = False
            self.on_count()
        if exc is None and self._published and self.on_publish is not None:
            self._published = False
            self.on_publish()

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...


#: What a query reads through: it opens one reading unit of work (a snapshot that waits for no writer)
#: per call. Entry points pass their application's unit-of-work factory.
UowFactory = Callable[[], UnitOfWork]
