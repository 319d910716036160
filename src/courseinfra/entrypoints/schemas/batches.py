"""Course batches, as created and as read (the columns of ``course_batch``)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from courseinfra.domain.enrolments import CourseBatch
from courseinfra.entrypoints.schemas.common import Day, IsoDate, Timestamp, iso


class BatchIn(BaseModel):
    """A new batch; the fields are the columns of ``course_batch`` (as in :class:`BatchOut`)."""

    model_config = ConfigDict(extra="forbid")

    batchid: str = Field(min_length=1, max_length=255)
    courseid: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1)
    description: str | None = None
    startdate: IsoDate | None = None
    enddate: IsoDate | None = None
    enrollmentenddate: IsoDate | None = Field(None, description="The last day to enrol.")
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

    @classmethod
    def of(cls, batch: CourseBatch) -> Self:
        """A row of ``course_batch``."""
        return cls(
            batchid=batch.batch_id,
            courseid=batch.course_id,
            name=batch.name,
            description=batch.description,
            startdate=iso(batch.start_date),
            enddate=iso(batch.end_date),
            enrollmentenddate=iso(batch.enrollment_end_date),
            enrollmenttype=batch.enrollment_type,
            status=batch.status,
            createdfor=list(batch.created_for),
            mentors=list(batch.mentors),
            createdby=batch.created_by,
            createddate=iso(batch.created_at),
        )


#: The enrolment types a batch can have (``course_batch.enrollmenttype``).
ENROLMENT_TYPES = ("open", "invite-only")
