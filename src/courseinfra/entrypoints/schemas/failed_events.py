"""Kept failed events and what a replay answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


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
