"""The SQL store of the Open edX events applied (ADR 0022)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from courseinfra.adapters.sql.store import upsert
from courseinfra.adapters.sql.tables import openedx_events_applied
from courseinfra.services.openedx.ports import AppliedEvents


class SqlAppliedEvents(AppliedEvents):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def applied(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        t = openedx_events_applied.c
        return set(
            self.connection.execute(
                sa.select(t.event_id).where(t.event_id.in_(sorted(set(event_ids))))
            ).scalars()
        )

    def record(self, event_id: str, event_type: str, at: datetime) -> bool:
        statement = upsert(self.connection, openedx_events_applied).values(
            event_id=event_id, event_type=event_type, applied_at=at
        )
        inserted = self.connection.execute(
            statement.on_conflict_do_nothing().returning(openedx_events_applied.c.event_id)
        )
        return inserted.first() is not None

    def prune(self, before: datetime, limit: int = 10_000) -> int:
        t = openedx_events_applied.c
        oldest = sa.select(t.event_id).where(t.applied_at < before).order_by(t.applied_at).limit(limit)
        result = self.connection.execute(
            openedx_events_applied.delete().where(t.event_id.in_(oldest.scalar_subquery()))
        )
        return result.rowcount
