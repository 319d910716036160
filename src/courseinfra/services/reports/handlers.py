"""Course progress reports, only for the batches of accepted frameworks' courses (TPD by default).

:func:`batches_to_report` is the seed's interface method; :func:`generate_reports` writes one CSV, one
summary and one chart per selected batch, streaming the rows page by page, and publishes the run's files
as the reports of their date in one step.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.errors import DomainError, ErrorKind, InvalidHierarchy
from courseinfra.domain.hierarchy import compute_relations, parse_hierarchy
from courseinfra.domain.progress import CourseView
from courseinfra.domain.reports import (
    PROGRESS_NOTES,
    AcceptedFrameworks,
    BatchDates,
    BatchSummary,
    CourseFacts,
    ProgressBasis,
    ReportRun,
    ReportSelection,
    ReportUnit,
    RunStatus,
    csv_record,
    end_of_day,
    first_level_units,
    header,
    progress_basis,
    progress_chart_svg,
    row_as_of,
    select_for_report,
)
from courseinfra.services.reports.ports import ReportArchive, ReportDraft
from courseinfra.services.unit_of_work import UnitOfWork

MANIFEST = "manifest.json"
NOT_FOUND = "batch-not-found"

ProgressCallback = Callable[[ReportRun], None]


@dataclass(frozen=True, slots=True)
class ReportOptions:
    accepted: AcceptedFrameworks
    mask_personal_data: bool = False
    page_size: int = 2000


class UnknownReportRun(DomainError):
    """No report run has this id."""

    code = "report-run-not-found"
    kind = ErrorKind.NOT_FOUND


def start_run(
    uow_factory: Callable[[], UnitOfWork],
    *,
    as_of: date,
    batch_ids: Sequence[str] = (),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReportRun:
    """Record a new run (status ``running``) to be carried out by :func:`generate_reports` with its id,
    so that a caller can answer with the id before the work starts."""
    run = ReportRun(uuid.uuid4().hex, as_of, RunStatus.RUNNING, clock(), requested_batches=tuple(batch_ids))
    with uow_factory() as uow:
        uow.report_runs.add(run)
        uow.commit()
    return run


def batches_to_report(
    uow: UnitOfWork, accepted: AcceptedFrameworks, as_of: date
) -> ReportSelection[CourseBatch]:
    """The seed's steps: the batches ongoing on ``as_of``, their unique courses, the frameworks of all
    those courses in one read, then the filter. Every batch left out comes with its reason, those
    that had ended or not started on ``as_of`` included."""
    batches = uow.batches.every()
    summaries = uow.hierarchies.summaries(sorted({batch.course_id for batch in batches}))
    facts = {
        course_id: CourseFacts(summary.published_at is not None, summary.framework)
        for course_id, summary in summaries.items()
    }
    return select_for_report(batches, _dates, facts, accepted, as_of)


def _dates(batch: CourseBatch) -> BatchDates:
    return BatchDates(batch.course_id, batch.start_date, batch.end_date)


def file_stem(batch_id: str) -> str:
    """A batch id as a file name: characters other than letters, digits, ``.``, ``-`` and ``_`` become
    ``_`` (the manifest maps every file back to its batch)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", batch_id).lstrip(".")
    return stem or "batch"


def _structure(uow: UnitOfWork, course_id: str) -> tuple[tuple[ReportUnit, ...], CourseView]:
    """The course's first-level units (the report's columns) and its leaves, as its stored hierarchy
    has them now (none where it cannot be read)."""
    stored = uow.hierarchies.get(course_id)
    try:
        hierarchy = None if stored is None else parse_hierarchy(stored.hierarchy, max_depth=None)
    except InvalidHierarchy:
        hierarchy = None
    if hierarchy is None:
        return (), CourseView(course_id, {}, {}, {})
    relations = compute_relations(hierarchy)
    view = CourseView(course_id, relations.leaf_nodes, relations.optional_nodes, relations.ancestors)
    return first_level_units(hierarchy), view


def generate_reports(
    uow_factory: Callable[[], UnitOfWork],
    archive: ReportArchive,
    options: ReportOptions,
    *,
    as_of: date,
    batch_ids: Sequence[str] = (),
    run_id: str | None = None,
    on_progress: ProgressCallback | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReportRun:
    """Generate the reports of ``as_of`` (only of ``batch_ids`` among the selected batches, when given)
    and publish them; return the finished run. ``run_id`` continues a run :func:`start_run` recorded.

    The run is recorded first (status ``running``, visible to every process), updated after each batch,
    and ends ``succeeded`` or ``failed`` with the error. A failed or interrupted run publishes nothing:
    the date keeps its earlier reports. The exception of a failed run is raised again after recording.
    """
    if run_id is None:
        run = start_run(uow_factory, as_of=as_of, batch_ids=batch_ids, clock=clock)
    else:
        with uow_factory().reading() as uow:
            found = uow.report_runs.get(run_id)
        if found is None:
            raise UnknownReportRun(f"no report run {run_id}")
        run = found
    draft = None
    try:
        with uow_factory().reading() as uow:
            selection = batches_to_report(uow, options.accepted, as_of)
        selected, not_selected = _restrict(selection, batch_ids)
        run = _save(uow_factory, replace(run, batches_total=len(selected)), on_progress)
        draft = archive.draft(run.run_id, as_of)
        basis = progress_basis(as_of, clock())
        reported = []
        for batch in selected:
            summary, files = _write_batch(uow_factory, draft, batch, options, run, on_progress, basis)
            run = replace(
                run, batches_done=run.batches_done + 1, rows_written=run.rows_written + summary.enrolled
            )
            run = _save(uow_factory, run, on_progress)
            reported.append({"batch_id": batch.batch_id, "files": files, "summary": summary.as_json()})
        outcome = {
            "as_of": as_of.isoformat(),
            "progress_basis": basis.value,
            "progress_note": PROGRESS_NOTES[basis],
            "accepted_frameworks": sorted(options.accepted.names),
            "personal_data_masked": options.mask_personal_data,
            "reported": reported,
            "skipped": not_selected,
            "skipped_counts": _counts(not_selected),
        }
        finished = replace(run, status=RunStatus.SUCCEEDED, finished_at=clock(), outcome=outcome)
        draft.write_text(MANIFEST, json.dumps(_manifest(finished), indent=2, sort_keys=True) + "\n")
        draft.publish()
    except BaseException as error:
        if draft is not None:
            draft.discard()
        failed = replace(
            run, status=RunStatus.FAILED, finished_at=clock(), error=f"{type(error).__name__}: {error}"
        )
        _save(uow_factory, failed, on_progress)
        raise
    return _save(uow_factory, finished, on_progress)


def _restrict(
    selection: ReportSelection[CourseBatch], batch_ids: Sequence[str]
) -> tuple[list[CourseBatch], list[dict[str, str]]]:
    """The selected batches (only the requested ones, when some are), and every batch left out with its
    reason (only the requested ones, when some are; ``batch-not-found`` for an id no batch has)."""
    skipped = [
        {"batch_id": batch.batch_id, "course_id": batch.course_id, "reason": reason.value}
        for batch, reason in selection.skipped
    ]
    if not batch_ids:
        return list(selection.selected), skipped
    wanted = set(batch_ids)
    known = {batch.batch_id for batch in selection.selected} | {item["batch_id"] for item in skipped}
    return (
        [batch for batch in selection.selected if batch.batch_id in wanted],
        [item for item in skipped if item["batch_id"] in wanted]
        + [{"batch_id": batch_id, "reason": NOT_FOUND} for batch_id in sorted(wanted - known)],
    )


def _counts(skipped: Sequence[dict[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in skipped:
        counts[item["reason"]] = counts.get(item["reason"], 0) + 1
    return counts


def _write_batch(
    uow_factory: Callable[[], UnitOfWork],
    draft: ReportDraft,
    batch: CourseBatch,
    options: ReportOptions,
    run: ReportRun,
    on_progress: ProgressCallback | None,
    basis: ProgressBasis,
) -> tuple[BatchSummary, dict[str, str]]:
    """Stream one batch's rows into its CSV, page by page in one read-only transaction (a snapshot that
    holds no writer back), then write its summary and chart. For a past date
    (``basis`` rebuilt) each row is rebuilt as of the end of that date."""
    stem = file_stem(batch.batch_id)
    files = {"csv": f"{stem}.csv", "summary": f"{stem}.summary.json", "chart": f"{stem}.progress.svg"}
    summary = BatchSummary(batch.batch_id, batch.course_id, run.as_of, basis)
    before = end_of_day(run.as_of) if basis is ProgressBasis.REBUILT else None
    with uow_factory().reading() as uow:
        units, course = _structure(uow, batch.course_id)
        unit_ids = [unit.unit_id for unit in units]
        with draft.csv(files["csv"]) as csv_file:
            csv_file.write_row(header(units))
            after = ""
            while page := uow.reports.learners(
                batch.batch_id, unit_ids, after_user=after, limit=options.page_size, before=before
            ):
                for found in page:
                    row = found
                    if before is not None and found.history is not None:
                        row = row_as_of(found, found.history, course, units, before)
                    csv_file.write_row(csv_record(row, mask_personal_data=options.mask_personal_data))
                    summary.add(row)
                after = page[-1].user_id
                if on_progress is not None:
                    on_progress(replace(run, rows_written=run.rows_written + summary.enrolled))
    draft.write_text(files["summary"], json.dumps(summary.as_json(), indent=2) + "\n")
    draft.write_text(files["chart"], progress_chart_svg(summary, f"{batch.name} ({batch.batch_id})"))
    return summary, files


def _save(
    uow_factory: Callable[[], UnitOfWork], run: ReportRun, on_progress: ProgressCallback | None
) -> ReportRun:
    with uow_factory() as uow:
        uow.report_runs.save(run)
        uow.commit()
    if on_progress is not None:
        on_progress(run)
    return run


def _manifest(run: ReportRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        **run.outcome,
    }
