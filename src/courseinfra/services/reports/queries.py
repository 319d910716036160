"""What entry points read of course reports: the batches a run would cover, and the runs."""

from __future__ import annotations

from datetime import date

from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.reports import AcceptedFrameworks, ReportRun, ReportSelection
from courseinfra.services.reports.handlers import UnknownReportRun, batches_to_report
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
