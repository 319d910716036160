"""The batches page: the batches (paged, by course), and one batch's progress histogram, completions
per day, and the report runs that covered it with their status, files and chart.

The same use cases as ``courseinfra batches``/``reports`` and ``/v1/batches``, ``/v1/reports``: the
progress is counted by the store (``enrolments.batch_progress``, one aggregate read whatever the
batch's size), a file is read through ``reports.report_file`` (the API's download: the ``pii`` grant
unless reports mask personal data, a scoped principal only its courses' batches). The same permission
as the API's batches router: ``read``, and scoped, so course staff open the batches of their courses
only (the list filtered, another course's batch a 403). No learner is named here; the batch's mentors
and creator (user ids) are shown to a principal with the ``pii`` grant only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from courseinfra.domain.access import Permission
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.reports import HISTOGRAM_BUCKETS, ReportRun, RunStatus
from courseinfra.entrypoints.console.charts import bar_chart, daily_points
from courseinfra.entrypoints.console.web import AppDep, Page, PrincipalDep, ReachDep, render
from courseinfra.services import enrolments, reports

PAGE = Page(
    label="Batches",
    path="/batches",
    order=40,
    read=Permission.READ,
    write=Permission.MANAGE_LEARNING,
    scoped=True,
)
router = PAGE.router()

#: Batches on one page of the list.
PAGE_SIZE = 50
#: The report runs looked through for a batch's (newest first).
RUNS_READ = 50
#: Days on the completions chart: the last ones with a completion.
CHART_DAYS = 90
#: An identifier as the stores keep them.
IDENTIFIER = 255

BatchId = Annotated[str, Path(min_length=1, max_length=IDENTIFIER)]


@router.get("/batches", response_class=HTMLResponse)
def batch_list(
    request: Request,
    app: AppDep,
    reach: ReachDep,
    course: Annotated[str | None, Query(max_length=IDENTIFIER, description="Only this course's.")] = None,
    after: Annotated[str, Query(max_length=IDENTIFIER)] = "",
) -> Response:
    """Batches in batch id order, a page at a time (for course staff, those of their courses: pages
    are filled past the batches of other courses, as the API's list does)."""
    course = course.strip() or None if course else None
    shown: list[CourseBatch] = []
    cursor = after
    while len(shown) <= PAGE_SIZE:
        found = enrolments.list_batches(app.uow_factory, course_id=course, after=cursor, limit=PAGE_SIZE + 1)
        reached = reach.courses(batch.course_id for batch in found)
        shown.extend(batch for batch in found if batch.course_id in reached)
        if len(found) <= PAGE_SIZE:
            break
        cursor = found[-1].batch_id
    more = len(shown) > PAGE_SIZE
    shown = shown[:PAGE_SIZE]
    return render(
        request,
        "batches/list.html",
        {
            "batches": shown,
            "course": course,
            "after": after,
            "next_after": shown[-1].batch_id if more else None,
        },
        page=PAGE,
    )


def batch_runs(runs: list[ReportRun], batch_id: str) -> list[dict[str, Any]]:
    """The runs that concern the batch, newest first: those that reported it (with its files and
    summary), skipped it (with the reason), or are running or failed with it among those requested
    (every batch when none was named)."""
    found = []
    for run in runs:
        reported = next((e for e in run.outcome.get("reported", []) if e.get("batch_id") == batch_id), None)
        skipped = next((e for e in run.outcome.get("skipped", []) if e.get("batch_id") == batch_id), None)
        requested = not run.requested_batches or batch_id in run.requested_batches
        if reported is None and skipped is None and not (run.status is not RunStatus.SUCCEEDED and requested):
            continue
        found.append({"run": run, "reported": reported, "skipped": skipped})
    return found


def run_chart(run_id: str, summary: Mapping[str, Any]) -> Any:
    histogram = summary.get("progress_histogram", {})
    points = [(label, int(histogram.get(label, 0))) for label in HISTOGRAM_BUCKETS]
    return bar_chart(
        f"run-{run_id}-chart",
        f"Completion distribution in run {run_id} (as of {summary.get('as_of') or 'the run'})",
        points,
        x_label="course progress (%)",
        y_label="learners",
    )


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_detail(
    request: Request, app: AppDep, principal: PrincipalDep, reach: ReachDep, batch_id: BatchId
) -> Response:
    batch = enrolments.get_batch(batch_id, app.uow_factory)
    progress = enrolments.batch_progress(batch_id, app.uow_factory)
    histogram = bar_chart(
        "progress-chart",
        f"Progress of the {progress.enrolled} active enrolment(s)",
        list(zip(HISTOGRAM_BUCKETS, progress.histogram, strict=True)),
        x_label="course progress (%)",
        y_label="learners",
    )
    days = daily_points(progress.completions, days=CHART_DAYS)
    completions = bar_chart(
        "completions-chart",
        "Completions per day (UTC)",
        days,
        x_label="day",
        y_label="completions",
    )
    runs = [reports.run_as_reached(run, reach) for run in reports.list_runs(app.uow_factory, limit=RUNS_READ)]
    concerned = batch_runs(runs, batch_id)
    for entry in concerned:
        reported = entry["reported"]
        entry["chart"] = run_chart(entry["run"].run_id, reported["summary"]) if reported else None
    return render(
        request,
        "batches/detail.html",
        {
            "batch": batch,
            "progress": progress,
            "histogram": histogram,
            "completions": completions,
            "completion_days": len(progress.completions),
            "chart_days": CHART_DAYS,
            "runs": concerned,
            "runs_read": RUNS_READ,
            "files_allowed": app.settings.reports_mask_personal_data or principal.pii,
            "show_people": principal.pii,
        },
        page=PAGE,
    )


@router.get("/batches/{batch_id}/reports/{run_id}/{name}")
def report_file(
    app: AppDep,
    reach: ReachDep,
    batch_id: BatchId,
    run_id: Annotated[str, Path(min_length=1, max_length=IDENTIFIER)],
    name: Annotated[str, Path(min_length=1, max_length=IDENTIFIER)],
) -> Response:
    """A file the run wrote for this batch (its CSV, summary or chart), through the API's download use
    case; a 404 page for a file of another batch."""
    run = reports.run_as_reached(reports.get_run(run_id, app.uow_factory), reach)
    [entry] = batch_runs([run], batch_id) or [{"reported": None}]
    if entry["reported"] is None or name not in entry["reported"]["files"].values():
        raise reports.ReportFileNotFound(f"run {run_id} wrote no file {name} for batch {batch_id}")
    path = reports.report_file(
        run_id,
        name,
        reach,
        app.uow_factory,
        app.reports,
        personal_data_masked=app.settings.reports_mask_personal_data,
    )
    return FileResponse(path, media_type=reports.media_type_of(path), filename=name)
