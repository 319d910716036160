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
    ReportFileNotFound,
    get_run,
    list_runs,
    media_type_of,
    report_batches,
    report_file,
    reported_files,
    run_as_reached,
)

__all__ = [
    "MANIFEST",
    "NOT_FOUND",
    "ProgressCallback",
    "ReportFileNotFound",
    "ReportOptions",
    "UnknownReportRun",
    "batches_to_report",
    "file_stem",
    "generate_reports",
    "get_run",
    "list_runs",
    "media_type_of",
    "report_batches",
    "report_file",
    "reported_files",
    "run_as_reached",
    "start_run",
]
