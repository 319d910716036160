"""Course reports for the batches of TPD courses, as runs whose files are published at once."""

from courseinfra.services.reports.handlers import (
    MANIFEST,
    NOT_FOUND,
    ProgressCallback,
    ReportOptions,
    UnknownReportRun,
    batches_to_report,
    file_stem,
    generate_reports,
    start_run,
)
from courseinfra.services.reports.queries import (
    get_run,
    list_runs,
    report_batches,
)

__all__ = [
    "MANIFEST",
    "NOT_FOUND",
    "ProgressCallback",
    "ReportOptions",
    "UnknownReportRun",
    "batches_to_report",
    "file_stem",
    "generate_reports",
    "get_run",
    "list_runs",
    "report_batches",
    "start_run",
]
