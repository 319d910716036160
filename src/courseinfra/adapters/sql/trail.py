"""The SQL store of the change trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from courseinfra.adapters.sql.tables import change_trail
from courseinfra.domain.trail import Actor, Change, ChangeRecord
from courseinfra.services.trail.ports import ChangeTrail


def _record(row: Any) -> ChangeRecord:
    return ChangeRecord(
        change_id=row.id,
        at=row.at,
        actor=Actor(row.actor, row.role, row.via, row.origin),
        change=Change(row.action, row.target, row.detail or {}),
    )


class SqlChangeTrail(ChangeTrail):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def add(self, changes: Sequence[Change], actor: Actor, at: datetime) -> None:
        self.connection.execute(
            change_trail.insert(),
            [
                {
                    "at": at,
                    "actor": actor.subject[:200],
                    "role": actor.role,
                    "via": actor.via,
                    "origin": None if actor.origin is None else actor.origin[:255],
                    "action": change.action,
                    "target": change.target[:300],
                    "detail": dict(change.detail) or None,
                }
                for change in changes
            ],
        )

    def list(
        self,
        *,
        after_id: int = 0,
        limit: int = 100,
        target: str | None = None,
        subject: str | None = None,
        action_prefix: str | None = None,
    ) -> list[ChangeRecord]:
        c = change_trail.c
        query = sa.select(change_trail).where(c.id > after_id).order_by(c.id).limit(limit)
        if target is not None:
            query = query.where(c.target == target)
        if subject is not None:
            query = query.where(c.actor == subject)
        if action_prefix is not None:
            escaped = action_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(c.action.like(f"{escaped}%", escape="\\"))
        return [_record(row) for row in self.connection.execute(query)]
