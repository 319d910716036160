"""What a change of a linked group's legacy members takes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LegacyMembersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: list[str] = Field(
        default_factory=list, description="Users to add to the legacy group, then the user group."
    )
    remove: list[str] = Field(
        default_factory=list, description="Users to remove from it (cohorts and teams)."
    )
