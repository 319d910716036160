"""Kept failed events and what a replay answers."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel

from courseinfra.entrypoints.schemas.common import Timestamp, iso
from courseinfra.services.events.ingest import ReplayResult
from courseinfra.services.failed_events.ports import FailedEvent


class FailedEventOut(BaseModel):
    """A kept event: what ``failed list --json`` prints and ``GET /v1/failed-events`` returns."""

    id: int
    job: str
    outcome: str
    code: str
    reason: str
    source: str
    attempts: int
    created_at: Timestamp
    resolved_at: Timestamp | None
    payload: str

    @classmethod
    def of(cls, event: FailedEvent) -> Self:
        return cls(
            id=event.id,
            job=event.job,
            outcome=event.outcome.value,
            code=event.code,
            reason=event.reason,
            source=event.source,
            attempts=event.attempts,
            created_at=iso(event.created_at),
            resolved_at=iso(event.resolved_at),
            payload=event.payload,
        )


class ReplayOut(BaseModel):
    """What a replay of a kept event did: resolved, or still failing with its code and reason."""

    event_id: int
    resolved: bool
    code: str
    reason: str

    @classmethod
    def of(cls, result: ReplayResult) -> Self:
        return cls(event_id=result.event_id, resolved=result.resolved, code=result.code, reason=result.reason)
