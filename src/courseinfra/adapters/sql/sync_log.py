"""The SQL log of linked-group operations that failed on the legacy side."""

from __future__ import annotations

import sqlalchemy as sa

from courseinfra.adapters.sql.store import aware
from courseinfra.adapters.sql.tables import legacy_sync_failures
from courseinfra.services.sync.ports import SyncFailure, SyncLog


class SqlSyncLog(SyncLog):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def add(self, failure: SyncFailure) -> int:
        row = self.connection.execute(
            legacy_sync_failures.insert()
            .values(
                at=failure.at,
                group_id=failure.group_id,
                operation=failure.operation,
                code=failure.code,
                message=failure.message,
                not_undone=list(failure.not_undone),
            )
            .returning(legacy_sync_failures.c.id)
        ).scalar_one()
        return int(row)

    def list(self, *, after_id: int = 0, limit: int = 100) -> list[SyncFailure]:
        f = legacy_sync_failures.c
        rows = self.connection.execute(
            sa.select(legacy_sync_failures).where(f.id > after_id).order_by(f.id.desc()).limit(limit)
        )
        return [
            SyncFailure(
                row.id,
                aware(row.at),
                row.group_id,
                row.operation,
                row.code,
                row.message,
                tuple(row.not_undone),
            )
            for row in rows
        ]
