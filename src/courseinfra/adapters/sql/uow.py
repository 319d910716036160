"""The SQL unit of work: one connection and one transaction over every SQL store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar, overload

import sqlalchemy as sa

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.adapters.sql.access import SqlTokenStore
from courseinfra.adapters.sql.audit import SqlAuditLog
from courseinfra.adapters.sql.criteria import CriteriaCompiler
from courseinfra.adapters.sql.enrolments import (
    SqlActivityStore,
    SqlBatchStore,
    SqlEnrolmentStore,
    SqlRelayCursors,
)
from courseinfra.adapters.sql.groups import SqlGroupFacts, SqlMemberships, SqlUserGroupStore
from courseinfra.adapters.sql.openedx import SqlAppliedEvents
from courseinfra.adapters.sql.reports import SqlReportReader, SqlReportRuns
from courseinfra.adapters.sql.store import (
    SqlCounterStore,
    SqlFailedEventStore,
    SqlHierarchyStore,
    SqlOutbox,
)
from courseinfra.adapters.sql.sync_log import SqlDriftLog, SqlEchoLog, SqlSyncLog
from courseinfra.adapters.sql.trail import SqlChangeTrail
from courseinfra.adapters.sql.users import SqlUserDirectory
from courseinfra.domain.criteria import CriteriaRegistry
from courseinfra.services.sync.ports import LegacyGroups
from courseinfra.services.unit_of_work import Contention, UnitOfWork

#: PostgreSQL's codes for a transaction that lost to another: serialization failure, deadlock, a lock
#: not available.
CONTENTION_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def is_contention(error: BaseException) -> bool:
    """Whether ``error`` says that a concurrent writer won (the transaction can be run again)."""
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    original = error.orig
    if getattr(original, "sqlstate", None) in CONTENTION_SQLSTATES:
        return True
    # SQLite: the write lock was not granted within the busy timeout, or a snapshot went stale.
    message = str(original).lower()
    return isinstance(error, sa.exc.OperationalError) and (
        "database is locked" in message or "database table is locked" in message
    )


T = TypeVar("T")

#: The legacy groups a unit of work hands out, given its connection: the local tables bound to it (the
#: default), or a remote system's client, the same for every unit of work.
LegacyBinding = Callable[[sa.Connection], LegacyGroups]


class Store(Generic[T]):
    """A store of the unit of work, built on its connection the first time a block uses it (a block
    touches two or three of the sixteen stores), then kept for the rest of the block."""

    def __init__(self, build: Callable[[SqlUnitOfWork], T]) -> None:
        self.build = build

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        STORES.append(name)

    @overload
    def __get__(self, uow: None, owner: type) -> Store[T]: ...

    @overload
    def __get__(self, uow: SqlUnitOfWork, owner: type) -> T: ...

    def __get__(self, uow: SqlUnitOfWork | None, owner: type) -> T | Store[T]:
        if uow is None:
            return self
        store = self.build(uow)
        uow.__dict__[self.name] = store  # found before this descriptor from now on
        return store


#: The names of the unit of work's stores.
STORES: list[str] = []


class SqlUnitOfWork(UnitOfWork):
    """A transaction on one connection of ``engine``, opened on entry and closed on exit. On SQLite it
    holds the write lock from its start (``read_only``: a snapshot that takes no lock; see
    :func:`~courseinfra.adapters.sql.engine.create_engine`)."""

    engine: sa.Engine
    registry: CriteriaRegistry
    compiler: CriteriaCompiler
    connection: sa.Connection

    hierarchies = Store(lambda uow: SqlHierarchyStore(uow.connection))
    failed_events = Store(lambda uow: SqlFailedEventStore(uow.connection))
    counters = Store(lambda uow: SqlCounterStore(uow.connection, on_add=uow.counted))
    outbox = Store(lambda uow: SqlOutbox(uow.connection))
    batches = Store(lambda uow: SqlBatchStore(uow.connection))
    enrolments = Store(lambda uow: SqlEnrolmentStore(uow.connection))
    activity = Store(lambda uow: SqlActivityStore(uow.connection))
    audits = Store(lambda uow: SqlAuditLog(uow.connection))
    users = Store(lambda uow: SqlUserDirectory(uow.connection))
    cursors = Store(lambda uow: SqlRelayCursors(uow.connection))
    reports = Store(lambda uow: SqlReportReader(uow.connection))
    report_runs = Store(lambda uow: SqlReportRuns(uow.connection))
    groups = Store(lambda uow: SqlUserGroupStore(uow.connection, uow.registry))
    group_facts = Store(lambda uow: SqlGroupFacts(uow.connection))
    memberships = Store(
        lambda uow: SqlMemberships(uow.connection, uow.registry, uow.compiler, uow.group_facts)
    )
    sync_log = Store(lambda uow: SqlSyncLog(uow.connection))
    drift = Store(lambda uow: SqlDriftLog(uow.connection))
    echoes = Store(lambda uow: SqlEchoLog(uow.connection))
    legacy = Store(lambda uow: uow.legacy_binding(uow.connection))
    tokens = Store(lambda uow: SqlTokenStore(uow.connection))
    trail = Store(lambda uow: SqlChangeTrail(uow.connection))
    openedx_events = Store(lambda uow: SqlAppliedEvents(uow.connection))

    def __init__(
        self,
        engine: sa.Engine,
        registry: CriteriaRegistry | None = None,
        compiler: CriteriaCompiler | None = None,
        *,
        read_only: bool = False,
        on_publish: Callable[[], None] | None = None,
        legacy: LegacyBinding | None = None,
        on_count: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(on_publish, on_count)
        self.read_only = read_only
        self.engine = engine
        self.legacy_binding: LegacyBinding = legacy or (
            lambda connection: LocalLegacyGroups(engine, connection)
        )
        self.registry = registry or CriteriaRegistry()
        self.compiler = compiler or CriteriaCompiler()

    def __enter__(self) -> Self:
        self.connection = self.engine.connect()
        sqlite = self.connection.dialect.name == "sqlite"
        if self.read_only:
            # A write in a reading unit of work fails on both databases, instead of taking a lock.
            if sqlite:
                self.connection.execution_options(sqlite_begin="DEFERRED")
            else:
                self.connection.execution_options(postgresql_readonly=True)
        try:
            self.connection.begin()
        except sa.exc.DBAPIError as error:
            self.connection.close()
            if is_contention(error):
                raise Contention(f"{type(error.orig).__name__}: {error.orig}") from error
            raise
        if self.read_only and sqlite:
            self.connection.exec_driver_sql("PRAGMA query_only = ON")
        for name in STORES:
            self.__dict__.pop(name, None)  # the previous block's, on its closed connection
        return super().__enter__()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            super().__exit__(exc_type, exc, tb)
            if self.read_only and self.connection.dialect.name == "sqlite":
                self.connection.exec_driver_sql("PRAGMA query_only = OFF")  # the pool hands it on
        finally:
            self.connection.close()
        if exc is not None and is_contention(exc):
            raise Contention(f"{type(exc.orig).__name__}: {exc.orig}") from exc  # type: ignore[attr-defined]
        self._publish_if_committed(exc)

    def _commit(self) -> None:
        # The next statement, if any, begins the next transaction (autobegin): the write lock is not
        # held between a commit and the end of the block.
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()
