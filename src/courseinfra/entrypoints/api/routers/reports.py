"""Course progress reports (TPD batches): runs and their files."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Query,
)
from fastapi.responses import FileResponse

from courseinfra.bootstrap import App
from courseinfra.domain.access import Permission
from courseinfra.domain.reports import ReportSelection
from courseinfra.entrypoints.api.deps import (
    AUTH,
    INVALID,
    NOT_FOUND,
    AppDep,
    ReachDep,
    guard,
)
from courseinfra.entrypoints.schemas.common import IsoDate
from courseinfra.entrypoints.schemas.reports import (
    ReportRunFilesOut,
    ReportRunIn,
    ReportRunOut,
    ReportSelectionOut,
)
from courseinfra.services import reports

router = APIRouter(
    tags=["reports"],
    dependencies=[guard(read=Permission.READ, write=Permission.OPERATE, scoped=True)],
    responses=AUTH,
)


@router.get("/v1/reports/batches", response_model=ReportSelectionOut, responses=INVALID)
def report_batches(
    app: AppDep,
    reach: ReachDep,
    as_of: Annotated[IsoDate | None, Query(description="Default today (UTC).")] = None,
) -> ReportSelectionOut:
    """The ongoing batches a report run would cover, and every other one with its reason (for a token
    scoped to courses, those of its courses)."""
    selection = reports.report_batches(
        as_of or datetime.now(UTC).date(), app.uow_factory, app.report_options.accepted
    )
    if reach.principal.scoped:
        everyone = [*selection.selected, *(batch for batch, _ in selection.skipped)]
        reached = reach.courses(batch.course_id for batch in everyone)
        selection = ReportSelection(
            tuple(b for b in selection.selected if b.course_id in reached),
            tuple((b, why) for b, why in selection.skipped if b.course_id in reached),
        )
    return ReportSelectionOut.of(selection)


@router.post("/v1/reports/runs", status_code=202, response_model=ReportRunOut, responses=INVALID)
def start_report_run(app: AppDep, body: ReportRunIn, background: BackgroundTasks) -> ReportRunOut:
    """Start a report run; it goes on after the answer. Follow it at ``/v1/reports/runs/{run_id}``."""
    as_of = body.as_of or datetime.now(UTC).date()
    run = reports.start_run(app.uow_factory, as_of=as_of, batch_ids=body.batches)
    background.add_task(_carry_out_report_run, app, run.run_id, as_of, tuple(body.batches))
    return ReportRunOut.of(run)


def _carry_out_report_run(app: App, run_id: str, as_of: date, batch_ids: tuple[str, ...]) -> None:
    # A failure is recorded on the run (status failed, with the error), which is where a client looks.
    with contextlib.suppress(Exception):
        reports.generate_reports(
            app.uow_factory, app.reports, app.report_options, as_of=as_of, batch_ids=batch_ids, run_id=run_id
        )


@router.get("/v1/reports/runs", response_model=list[ReportRunOut], responses=INVALID)
def list_report_runs(
    app: AppDep, reach: ReachDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[ReportRunOut]:
    """The latest report runs, newest first (for a token scoped to courses, what each did for its
    courses' batches)."""
    return [
        ReportRunOut.of(reports.run_as_reached(run, reach))
        for run in reports.list_runs(app.uow_factory, limit=limit)
    ]


@router.get("/v1/reports/runs/{run_id}", response_model=ReportRunFilesOut, responses={**INVALID, **NOT_FOUND})
def get_report_run(app: AppDep, reach: ReachDep, run_id: str) -> ReportRunFilesOut:
    """A report run's status and progress; when it succeeded, what it reported and its files (for a
    token scoped to courses, the files of its courses' batches)."""
    run = reports.run_as_reached(reports.get_run(run_id, app.uow_factory), reach)
    files = app.reports.files(run_id)
    if reach.principal.scoped:
        files = [name for name in files if name in reports.reported_files(run)]
    return ReportRunFilesOut.of(run, files=files)


@router.get("/v1/reports/runs/{run_id}/files/{name}", responses={**INVALID, **NOT_FOUND})
def download_report_file(app: AppDep, reach: ReachDep, run_id: str, name: str) -> FileResponse:
    """One file of a finished run: a batch's CSV, summary (JSON) or chart (SVG), or the manifest. The
    CSVs name learners: unless reports mask personal data, the token needs the ``pii`` grant."""
    path = reports.report_file(
        run_id,
        name,
        reach,
        app.uow_factory,
        app.reports,
        personal_data_masked=app.settings.reports_mask_personal_data,
    )
    return FileResponse(path, media_type=reports.media_type_of(path), filename=name)
