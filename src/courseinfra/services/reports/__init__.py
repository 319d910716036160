"""Course reports for the batches of TPD courses, as runs whose files are published at once."""

from courseinfra.services.reports.handlers import (
    MANIFEST,
    NOT_ONGOING,
    ProgressCallback,
    ReportOptions,
    UnknownReportRun,
    batches_to_report,
    file_stem,
    generate_reports,
    get_run,
    list_runs,
    start_run,
)

__all__ = [
    "MANIFEST",
    "NOT_ONGOING",
    "ProgressCallback",
    "ReportOptions",
    "UnknownReportRun",
    "batches_to_report",
    "file_stem",
    "generate_reports",
    "get_run",
    "list_runs",
    "start_run",
]
