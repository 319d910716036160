"""The SQL unit of work: one connection and one transaction over every SQL store."""

from __future__ import annotations

from typing import Any, Self

import sqlalchemy as sa

from courseinfra.adapters.sql.criteria import CriteriaCompiler
from courseinfra.adapters.sql.enrolments import (
    SqlActivityStore,
    SqlAuditLedger,
    SqlBatchStore,
    SqlEnrolmentStore,
    SqlRelayCursors,
)
from courseinfra.adapters.sql.groups import SqlGroupFacts, SqlMemberships, SqlUserGroupStore
from courseinfra.adapters.sql.reports import SqlReportReader, SqlReportRuns
from courseinfra.adapters.sql.store import (
    SqlCounterStore,
    SqlFailedEventStore,
    SqlHierarchyStore,
    SqlOutbox,
)
from courseinfra.adapters.sql.sync_log import SqlSyncLog
from courseinfra.adapters.sql.users import SqlUserDirectory
from courseinfra.domain.criteria import CriteriaRegistry
from courseinfra.services.ports import UnitOfWork


class SqlUnitOfWork(UnitOfWork):
    """A transaction on one connection of ``engine``, opened on entry and closed on exit."""

    def __init__(
        self,
        engine: sa.Engine,
        registry: CriteriaRegistry | None = None,
        compiler: CriteriaCompiler | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.registry = registry or CriteriaRegistry()
        self.compiler = compiler or CriteriaCompiler()

    def __enter__(self) -> Self:
        self.connection = self.engine.connect()
        self.transaction = self.connection.begin()
        self.hierarchies = SqlHierarchyStore(self.connection)
        self.failed_events = SqlFailedEventStore(self.connection)
        self.counters = SqlCounterStore(self.connection)
        self.outbox = SqlOutbox(self.connection)
        self.batches = SqlBatchStore(self.connection)
        self.enrolments = SqlEnrolmentStore(self.connection)
        self.activity = SqlActivityStore(self.connection)
        self.audits = SqlAuditLedger(self.connection)
        self.users = SqlUserDirectory(self.connection)
        self.cursors = SqlRelayCursors(self.connection)
        self.reports = SqlReportReader(self.connection)
        self.report_runs = SqlReportRuns(self.connection)
        self.groups = SqlUserGroupStore(self.connection, self.registry)
        self.group_facts = SqlGroupFacts(self.connection)
        self.memberships = SqlMemberships(self.connection, self.registry, self.compiler, self.group_facts)
        self.sync_log = SqlSyncLog(self.connection)
        return super().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        try:
            super().__exit__(*exc_info)
        finally:
            self.connection.close()

    def _commit(self) -> None:
        self.transaction.commit()
        self.transaction = self.connection.begin()

    def rollback(self) -> None:
        if self.transaction.is_active:
            self.transaction.rollback()
