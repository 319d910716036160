"""What a report run takes."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class ReportRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: date | None = Field(None, description="The report date; default today (UTC).")
    batches: list[str] = Field(
        default_factory=list, description="Only these batches (all selected when empty)."
    )
