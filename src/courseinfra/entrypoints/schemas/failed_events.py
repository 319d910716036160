"""Kept failed events and what a replay answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from courseinfra.entrypoints.schemas.common import iso
from courseinfra.services.failed_events.ports import FailedEvent


class FailedEventOut(BaseModel):
    id: int
    job: str
    outcome: str
    code: str
    reason: str
    source: str
    attempts: int
    created_at: datetime
    resolved_at: datetime | None
    payload: str


class ReplayOut(BaseModel):
    event_id: int
    resolved: bool
    code: str
    reason: str


def failed_event_json(event: FailedEvent) -> dict[str, Any]:
    """A kept event: what ``failed list --json`` prints and ``GET /v1/failed-events`` returns."""
    return {
        "id": event.id,
        "job": event.job,
        "outcome": event.outcome.value,
        "code": event.code,
        "reason": event.reason,
        "source": event.source,
        "attempts": event.attempts,
        "created_at": iso(event.created_at),
        "resolved_at": iso(event.resolved_at),
        "payload": event.payload,
    }
