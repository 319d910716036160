"""Enrolments, their metrics, and what a recomputation takes and answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from courseinfra.domain.enrolments import Enrolment
from courseinfra.domain.progress import UnitMetrics
from courseinfra.entrypoints.schemas.common import Timestamp, iso
from courseinfra.services.course_metrics import Recomputed


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

    @classmethod
    def of(cls, enrolment: Enrolment, **extra: Any) -> Self:
        state = enrolment.state
        return cls(
            userid=state.key.user_id,
            courseid=state.key.course_id,
            batchid=state.key.batch_id,
            active=enrolment.active,
            addedby=enrolment.added_by,
            enrolleddate=iso(enrolment.enrolled_date),
            datetime=iso(state.last_updated),
            contentstatus=dict(state.content_status),
            lastreadcontentid=state.last_read_content_id,
            lastreadcontentstatus=state.last_read_content_status,
            progress=state.progress,
            completionpercentage=state.completion_percentage,
            status=int(state.status),
            completedon=iso(state.completed_on),
            certificates=[dict(certificate) for certificate in enrolment.certificates],
            mode=enrolment.mode,
            **extra,
        )


class EnrolOut(EnrolmentOut):
    created: bool = Field(description="False if the user was enrolled already.")


class MetricsOut(BaseModel):
    """The ``agg`` of a ``user_activity_agg`` row (its keys are camelCase)."""

    completedCount: int
    leafNodesCount: int
    progress: int

    @classmethod
    def of(cls, metrics: UnitMetrics) -> Self:
        return cls(**metrics.agg)


class ActivityOut(BaseModel):
    course: MetricsOut | None = Field(description="Null until progress of the enrolment is aggregated.")
    units: dict[str, MetricsOut]

    @classmethod
    def of(cls, metrics: Sequence[UnitMetrics]) -> Self:
        """The ``user_activity_agg`` rows of one enrolment: the course's (null before any progress was
        aggregated) and each unit's, by unit id."""
        course = next((m for m in metrics if m.activity_type == COURSE_ACTIVITY), None)
        units = {m.activity_id: m for m in metrics if m.activity_type == UNIT_ACTIVITY}
        return cls(
            course=None if course is None else MetricsOut.of(course),
            units={unit: MetricsOut.of(units[unit]) for unit in sorted(units)},
        )


class RecomputeIn(BaseModel):
    """Which enrolments to recompute: every batch of a course, one batch, or one learner of a batch."""

    # What _one_selection takes: a course_id alone, or a batch_id (with a user_id or not).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["course_id"],
                    "properties": {
                        "course_id": {"type": "string"},
                        "batch_id": {"type": "null"},
                        "user_id": {"type": "null"},
                    },
                },
                {
                    "required": ["batch_id"],
                    "properties": {"batch_id": {"type": "string"}, "course_id": {"type": "null"}},
                },
            ]
        },
    )

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

    @classmethod
    def of(cls, done: Recomputed) -> Self:
        return cls(enrolments=done.enrolments, audit_events=done.audit_events)


COURSE_ACTIVITY = "Course"


UNIT_ACTIVITY = "CourseUnit"
