"""What a report run takes and answers, and the batches it would cover."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.reports import ReportRun, ReportSelection
from courseinfra.entrypoints.schemas.common import Day, IsoDate, Timestamp, iso


class ReportRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: IsoDate | None = Field(None, description="The report date; default today (UTC).")
    batches: list[str] = Field(
        default_factory=list, description="Only these batches (all selected when empty)."
    )


class ReportRunOut(BaseModel):
    """A report run: its status and progress, and when it succeeded, what it reported and skipped."""

    run_id: str
    as_of: Day
    status: str = Field(description="running, succeeded or failed.")
    started_at: Timestamp
    finished_at: Timestamp | None
    requested_batches: list[str] = Field(description="Empty: every selected batch.")
    batches_total: int
    batches_done: int
    rows_written: int
    error: str | None
    outcome: dict[str, Any] = Field(
        description=(
            "When it succeeded: the batches reported and skipped, and progress_basis: current (the "
            "progress recorded when it ran) or rebuilt (as of the end of a past report date, UTC)."
        )
    )

    @classmethod
    def of(cls, run: ReportRun, **extra: Any) -> Self:
        return cls(
            run_id=run.run_id,
            as_of=run.as_of.isoformat(),
            status=run.status.value,
            started_at=iso(run.started_at),
            finished_at=iso(run.finished_at),
            requested_batches=list(run.requested_batches),
            batches_total=run.batches_total,
            batches_done=run.batches_done,
            rows_written=run.rows_written,
            error=run.error,
            outcome=dict(run.outcome),
            **extra,
        )


class ReportRunFilesOut(ReportRunOut):
    files: list[str] = Field(description="The run's files, by name (download at .../files/{name}).")


class SelectedBatchOut(BaseModel):
    batch_id: str
    course_id: str


class SkippedBatchOut(SelectedBatchOut):
    reason: str = Field(
        description=(
            "Why the batch is not reported: batch-ended, batch-not-started (on the report date), "
            "course-not-found, course-not-published, course-has-no-framework, framework-not-accepted."
        )
    )


class ReportSelectionOut(BaseModel):
    """The batches a report run would cover, and every other batch with its reason."""

    selected: list[SelectedBatchOut]
    skipped: list[SkippedBatchOut]
    skipped_counts: dict[str, int] = Field(description="How many batches each reason skips.")

    @classmethod
    def of(cls, selection: ReportSelection[CourseBatch]) -> Self:
        return cls(
            selected=[
                SelectedBatchOut(batch_id=b.batch_id, course_id=b.course_id) for b in selection.selected
            ],
            skipped=[
                SkippedBatchOut(batch_id=b.batch_id, course_id=b.course_id, reason=reason.value)
                for b, reason in selection.skipped
            ],
            skipped_counts=selection.skipped_counts(),
        )
