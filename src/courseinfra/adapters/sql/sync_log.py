"""The SQL log of linked-group operations that failed on the legacy side, the open drift of links whose
user group is the authority, and the echoes expected of courseinfra's own legacy writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from courseinfra.adapters.sql.criteria import in_list
from courseinfra.adapters.sql.store import aware, upsert
from courseinfra.adapters.sql.tables import legacy_drift, legacy_echoes, legacy_sync_failures
from courseinfra.domain.legacy_echoes import ExpectedEcho
from courseinfra.services.sync.ports import Drift, DriftLog, DriftSide, EchoLog, SyncFailure, SyncLog


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

    def count_by_group(self) -> dict[str, int]:
        return _count_by_group(self.connection, legacy_sync_failures.c.group_id)


def _count_by_group(connection: sa.Connection, group_id: sa.ColumnElement[str]) -> dict[str, int]:
    query = sa.select(group_id, sa.func.count()).group_by(group_id)
    return {str(group): int(count) for group, count in connection.execute(query)}


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

    def count_by_group(self) -> dict[str, int]:
        return _count_by_group(self.connection, legacy_drift.c.group_id)


class SqlEchoLog(EchoLog):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def expect(self, echoes: Sequence[ExpectedEcho]) -> None:
        if not echoes:
            return
        # One row per (group, user): the last echo given for a pair is the state the write left.
        rows = {
            (echo.group_id, echo.user_id): {
                "group_id": echo.group_id,
                "user_id": echo.user_id,
                "member": echo.member,
                "state": echo.state,
                "expires_at": echo.expires_at,
            }
            for echo in echoes
        }
        statement = upsert(self.connection, legacy_echoes).values([rows[key] for key in sorted(rows)])
        excluded = statement.excluded
        self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[legacy_echoes.c.group_id, legacy_echoes.c.user_id],
                set_={"member": excluded.member, "state": excluded.state, "expires_at": excluded.expires_at},
            )
        )

    def find(self, group_id: str, user_ids: Sequence[str], now: datetime) -> dict[str, ExpectedEcho]:
        if not user_ids:
            return {}
        e = legacy_echoes.c
        rows = self.connection.execute(
            sa.select(legacy_echoes).where(
                e.group_id == group_id,
                in_list(e.user_id, set(user_ids), self.connection.dialect.name),
                e.expires_at > now,
            )
        )
        return {
            row.user_id: ExpectedEcho(row.group_id, row.user_id, row.member, row.state, aware(row.expires_at))
            for row in rows
        }

    def clear(self, group_id: str, user_ids: Sequence[str] | None = None) -> int:
        e = legacy_echoes.c
        statement = legacy_echoes.delete().where(e.group_id == group_id)
        if user_ids is not None:
            if not user_ids:
                return 0
            statement = statement.where(in_list(e.user_id, set(user_ids), self.connection.dialect.name))
        return self.connection.execute(statement).rowcount

    def prune(self, now: datetime, limit: int = 10_000) -> int:
        e = legacy_echoes.c
        expired = (
            sa.select(e.group_id, e.user_id).where(e.expires_at <= now).order_by(e.expires_at).limit(limit)
        )
        statement = legacy_echoes.delete().where(sa.tuple_(e.group_id, e.user_id).in_(expired))
        return self.connection.execute(statement).rowcount

    def count(self) -> int:
        return int(self.connection.scalar(sa.select(sa.func.count()).select_from(legacy_echoes)) or 0)
