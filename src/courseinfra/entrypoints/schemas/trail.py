"""The trail of who changed what, as the API returns it and the CLI prints it."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, Field

from courseinfra.domain.trail import ChangeRecord
from courseinfra.entrypoints.schemas.common import Timestamp, iso


class ChangeOut(BaseModel):
    id: int = Field(description="Grows with each change (with gaps); page with ?after=.")
    at: Timestamp
    actor: str = Field(description="A token's id, jwt:<user>, cli:<user>, or system.")
    role: str
    via: str = Field(description="api, cli or worker.")
    origin: str | None = Field(description="The client's address, or the machine a command ran on.")
    action: str = Field(description="What was done: group.update, users.import, token.revoke, ...")
    target: str = Field(description="What it was done to: group:<id>, user:<id>, content:<id>, ...")
    detail: dict[str, Any]

    @classmethod
    def of(cls, record: ChangeRecord) -> Self:
        return cls(
            id=record.change_id,
            at=iso(record.at) or "",
            actor=record.actor.subject,
            role=record.actor.role,
            via=record.actor.via,
            origin=record.actor.origin,
            action=record.change.action,
            target=record.change.target,
            detail=dict(record.change.detail),
        )
