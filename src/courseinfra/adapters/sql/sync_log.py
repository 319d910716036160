"""The SQL log of linked-group operations that failed on the legacy side, and the open drift of links
whose user group is the authority."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from courseinfra.adapters.sql.criteria import in_list
from courseinfra.adapters.sql.store import aware, upsert
from courseinfra.adapters.sql.tables import legacy_drift, legacy_sync_failures
from courseinfra.services.sync.ports import Drift, DriftLog, DriftSide, SyncFailure, SyncLog


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


class SqlDriftLog(DriftLog):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def record(self, group_id: str, sides: Mapping[str, DriftSide], at: datetime, origin: str) -> None:
        if not sides:
            return
        statement = upsert(self.connection, legacy_drift).values(
            [
                {
                    "group_id": group_id,
                    "user_id": user,
                    "side": side.value,
                    "detected_at": at,
                    "origin": origin,
                }
                for user, side in sorted(sides.items())
            ]
        )
        excluded = statement.excluded
        self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[legacy_drift.c.group_id, legacy_drift.c.user_id],
                set_={"side": excluded.side, "detected_at": excluded.detected_at, "origin": excluded.origin},
            )
        )

    def clear(self, group_id: str, user_ids: Sequence[str] | None = None) -> int:
        d = legacy_drift.c
        statement = legacy_drift.delete().where(d.group_id == group_id)
        if user_ids is not None:
            if not user_ids:
                return 0
            statement = statement.where(in_list(d.user_id, list(user_ids), self.connection.dialect.name))
        return self.connection.execute(statement).rowcount

    def list(self, *, group_id: str | None = None, limit: int = 100) -> list[Drift]:
        d = legacy_drift.c
        query = sa.select(legacy_drift).order_by(d.group_id, d.user_id).limit(limit)
        if group_id is not None:
            query = query.where(d.group_id == group_id)
        return [
            Drift(row.group_id, row.user_id, DriftSide(row.side), aware(row.detected_at), row.origin)
            for row in self.connection.execute(query)
        ]

    def count(self) -> int:
        return int(self.connection.scalar(sa.select(sa.func.count()).select_from(legacy_drift)) or 0)
