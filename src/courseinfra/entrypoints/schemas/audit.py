"""An AUDIT event as listed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, Field

from courseinfra.services.audit.ports import AuditEntry


class AuditEntryOut(BaseModel):
    id: int = Field(description="The entry id: pass the last one as ``after`` for the next page.")
    emitted_at: datetime
    event: dict[str, Any] = Field(description="The AUDIT event (telemetry v3).")

    @classmethod
    def of(cls, entry: AuditEntry) -> Self:
        return cls(id=entry.id, emitted_at=entry.emitted_at, event=entry.telemetry)
