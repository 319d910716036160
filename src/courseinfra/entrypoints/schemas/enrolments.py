"""Enrolments, their metrics, and what a recomputation takes and answers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from courseinfra.entrypoints.schemas.common import Timestamp


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    addedby: str | None = Field(None, description="Who enrolled the user.")
    mode: str | None = Field(
        None, min_length=1, max_length=32, description="The enrolment's mode (track); default audit."
    )


class EnrolmentOut(BaseModel):
    """A row of ``user_enrolments``; ``datetime`` is when it was last updated."""

    userid: str
    courseid: str
    batchid: str
    active: bool
    addedby: str | None
    enrolleddate: Timestamp
    datetime: Timestamp | None
    contentstatus: dict[str, int] = Field(description="Content id to status: 0, 1 started, 2 completed.")
    lastreadcontentid: str | None
    lastreadcontentstatus: int | None
    progress: int = Field(description="Completed required leaves.")
    completionpercentage: int
    status: int = Field(description="0 not started, 1 in progress, 2 completed.")
    completedon: Timestamp | None
    certificates: list[dict[str, Any]]
    mode: str = Field(description="The enrolment's mode (track): audit, verified, ...")


class EnrolOut(EnrolmentOut):
    created: bool = Field(description="False if the user was enrolled already.")


class MetricsOut(BaseModel):
    """The ``agg`` of a ``user_activity_agg`` row (its keys are camelCase)."""

    completedCount: int
    leafNodesCount: int
    progress: int


class ActivityOut(BaseModel):
    course: MetricsOut | None = Field(description="Null until progress of the enrolment is aggregated.")
    units: dict[str, MetricsOut]


class RecomputeIn(BaseModel):
    """Which enrolments to recompute: every batch of a course, one batch, or one learner of a batch."""

    model_config = ConfigDict(extra="forbid")

    course_id: Annotated[str | None, Field(min_length=1)] = None
    batch_id: Annotated[str | None, Field(min_length=1)] = None
    user_id: Annotated[str | None, Field(min_length=1)] = None

    @model_validator(mode="after")
    def _one_selection(self) -> RecomputeIn:
        if (self.course_id is None) == (self.batch_id is None):
            raise ValueError("give exactly one of course_id and batch_id")
        if self.user_id is not None and self.batch_id is None:
            raise ValueError("user_id needs batch_id")
        return self


class RecomputedOut(BaseModel):
    enrolments: int = Field(description="Enrolments whose progress and metrics were re-derived.")
    audit_events: int = Field(description="AUDIT events emitted that had not been emitted before.")
