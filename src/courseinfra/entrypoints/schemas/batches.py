"""Course batches, as created and as read (the columns of ``course_batch``)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from courseinfra.entrypoints.schemas.common import Day, Timestamp


class BatchIn(BaseModel):
    """A new batch; the fields are the columns of ``course_batch`` (as in :class:`BatchOut`)."""

    model_config = ConfigDict(extra="forbid")

    batchid: str = Field(min_length=1, max_length=255)
    courseid: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1)
    description: str | None = None
    startdate: date | None = None
    enddate: date | None = None
    enrollmentenddate: date | None = Field(None, description="The last day to enrol.")
    enrollmenttype: Literal["open", "invite-only"] = "open"
    mentors: list[str] = Field(default_factory=list)
    createdfor: list[str] = Field(default_factory=list, description="Organisations.")
    createdby: str | None = None


class BatchOut(BaseModel):
    batchid: str
    courseid: str
    name: str
    description: str | None
    startdate: Day | None
    enddate: Day | None
    enrollmentenddate: Day | None
    enrollmenttype: str
    status: int
    createdfor: list[str]
    mentors: list[str]
    createdby: str | None
    createddate: Timestamp
