"""What entry points read of course reports: the batches a run would cover, and the runs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from courseinfra.domain.access import Forbidden
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.reports import AcceptedFrameworks, ReportRun, ReportSelection
from courseinfra.services.access.scopes import Reach
from courseinfra.services.reports.handlers import UnknownReportRun, batches_to_report
from courseinfra.services.reports.ports import ReportArchive
from courseinfra.services.unit_of_work import UowFactory


def report_batches(
    as_of: date, uow_factory: UowFactory, accepted: AcceptedFrameworks
) -> ReportSelection[CourseBatch]:
    """The ongoing batches a run for ``as_of`` would cover, and every other one with its reason."""
    with uow_factory().reading() as uow:
        return batches_to_report(uow, accepted, as_of)


def get_run(run_id: str, uow_factory: UowFactory) -> ReportRun:
    with uow_factory().reading() as uow:
        run = uow.report_runs.get(run_id)
    if run is None:
        raise UnknownReportRun(f"no report run {run_id}")
    return run


def list_runs(uow_factory: UowFactory, *, limit: int = 50) -> list[ReportRun]:
    """The latest runs first."""
    with uow_factory().reading() as uow:
        return uow.report_runs.list(limit=limit)


def run_as_reached(run: ReportRun, reach: Reach) -> ReportRun:
    """The run as a principal scoped to courses may see it: only its courses' batches in the outcome
    (reported and skipped, with the skipped counts recounted); an unscoped principal sees all of it."""
    if not reach.principal.scoped or not run.outcome:
        return run
    outcome = dict(run.outcome)
    reported = [e for e in outcome.get("reported", []) if reach.course(str(e["summary"]["course_id"]))]
    # A requested batch that does not exist was skipped with no course: it is no course's.
    skipped = [
        e for e in outcome.get("skipped", []) if "course_id" in e and reach.course(str(e["course_id"]))
    ]
    counts: dict[str, int] = {}
    for entry in skipped:
        counts[entry["reason"]] = counts.get(entry["reason"], 0) + 1
    outcome.update(reported=reported, skipped=skipped, skipped_counts=counts)
    return replace(run, outcome=outcome)


def reported_files(run: ReportRun) -> set[str]:
    """The files of the batches the run's outcome reports (after :func:`run_as_reached`, those of the
    principal's courses)."""
    return {name for entry in run.outcome.get("reported", []) for name in entry["files"].values()}


def report_file(
    run_id: str,
    name: str,
    reach: Reach,
    uow_factory: UowFactory,
    archive: ReportArchive,
    *,
    personal_data_masked: bool,
) -> Path:
    """The local path of one file of a run (a batch's CSV, summary or chart, or the manifest), for the
    principal of ``reach``. The CSVs name learners: unless reports mask personal data the principal
    needs the ``pii`` grant (:class:`Forbidden`); a principal scoped to courses gets only its courses'
    batches' files (:class:`Forbidden`); :class:`UnknownReportRun` or :class:`ReportFileNotFound`
    when there is no such run or file."""
    if not (personal_data_masked or reach.principal.pii):
        raise Forbidden("report files hold learners' names and emails: the token needs the pii grant")
    run = get_run(run_id, uow_factory)
    path = archive.path(run_id, name)
    if path is not None and reach.principal.scoped and name not in reported_files(run_as_reached(run, reach)):
        raise Forbidden(f"the file {name} is not of a batch of the token's courses")
    if path is None:
        raise ReportFileNotFound(f"run {run_id} has no file {name}")
    return path


#: The media type of a run's files, by suffix (the manifest and summaries are JSON, charts SVG).
MEDIA_TYPES = {".csv": "text/csv; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml"}


def media_type_of(path: Path) -> str:
    """The media type a run's file is served with."""
    return MEDIA_TYPES.get(path.suffix, "application/octet-stream")


class ReportFileNotFound(DomainError):
    code = "report-file-not-found"
    kind = ErrorKind.NOT_FOUND
