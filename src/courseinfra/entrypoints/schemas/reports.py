"""What a report run takes."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.reports import ReportRun, ReportSelection
from courseinfra.entrypoints.schemas.common import iso


class ReportRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: date | None = Field(None, description="The report date; default today (UTC).")
    batches: list[str] = Field(
        default_factory=list, description="Only these batches (all selected when empty)."
    )


def report_run_json(run: ReportRun) -> dict[str, Any]:
    """A report run: its status and progress, and when it succeeded, what it reported and skipped."""
    return {
        "run_id": run.run_id,
        "as_of": run.as_of.isoformat(),
        "status": run.status.value,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "requested_batches": list(run.requested_batches),
        "batches_total": run.batches_total,
        "batches_done": run.batches_done,
        "rows_written": run.rows_written,
        "error": run.error,
        "outcome": dict(run.outcome),
    }


def report_selection_json(selection: ReportSelection[CourseBatch]) -> dict[str, Any]:
    """The batches a report run would cover, and every other ongoing batch with its reason."""
    return {
        "selected": [{"batch_id": b.batch_id, "course_id": b.course_id} for b in selection.selected],
        "skipped": [
            {"batch_id": b.batch_id, "course_id": b.course_id, "reason": reason.value}
            for b, reason in selection.skipped
        ],
        "skipped_counts": selection.skipped_counts(),
    }
