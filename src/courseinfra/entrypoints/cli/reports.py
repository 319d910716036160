"""The ``reports`` commands: select batches, generate course progress reports, read their runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from courseinfra.domain.reports import ReportRun
from courseinfra.entrypoints.cli.common import (
    Failure,
    application,
    as_date,
    counted,
    emit,
    emit_lines,
    err,
    progress_bar,
)
from courseinfra.entrypoints.schemas.reports import ReportRunFilesOut, ReportRunOut, ReportSelectionOut
from courseinfra.services.reports import generate_reports, get_run, list_runs, report_batches

app = typer.Typer(no_args_is_help=True, help="Course progress reports, for TPD batches only.")


AsOfOption = Annotated[
    datetime | None,
    typer.Option(
        "--as-of", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="The report date; default today (UTC)."
    ),
]


@app.command("batches")
def reports_batches(as_of: AsOfOption = None) -> None:
    """The ongoing batches a report run would cover, and every other one with its reason (JSON)."""
    day = as_date(as_of) or datetime.now(UTC).date()
    with application() as app:
        selection = report_batches(day, app.uow_factory, app.report_options.accepted)
    emit(ReportSelectionOut.of(selection))


@app.command("generate")
def reports_generate(
    out: Annotated[
        Path | None, typer.Option("--out", help="Reports folder; default COURSEINFRA_REPORTS_DIR.")
    ] = None,
    batch: Annotated[
        list[str] | None, typer.Option("--batch", help="Only this batch (repeat for several).")
    ] = None,
    as_of: AsOfOption = None,
) -> None:
    """Write one CSV, one summary (JSON) and one chart (SVG) per selected batch into OUT/<date>/,
    replacing that date's earlier reports in one step; print the run (JSON). Exit code 1 if it failed."""
    day = as_date(as_of) or datetime.now(UTC).date()
    with application() as app:
        archive = app.report_archive(out)
        with progress_bar(True) as progress:
            task = progress.add_task("batches", total=None)

            def show(run: ReportRun) -> None:
                progress.update(
                    task,
                    total=run.batches_total,
                    completed=run.batches_done,
                    description=f"reports {run.as_of}: {run.rows_written:,} rows",
                )

            try:
                run = generate_reports(
                    app.uow_factory,
                    archive,
                    app.report_options,
                    as_of=day,
                    batch_ids=tuple(batch or ()),
                    on_progress=show,
                )
            except Exception as error:
                raise Failure(f"report run failed: {type(error).__name__}: {error}") from None
    emit(ReportRunOut.of(run))
    folder = (out or app.settings.reports_path) / day.isoformat()
    basis = (
        f"progress as of the end of {day.isoformat()} (UTC), rebuilt"
        if run.outcome.get("progress_basis") == "rebuilt"
        else "progress as recorded now"
    )
    skipped = run.outcome.get("skipped_counts") or {}
    err.print(
        f"{counted(run.batches_done, 'batch', 'batches')}, {counted(run.rows_written, 'row', 'rows')} in {folder}; "
        f"{basis}; skipped: {', '.join(f'{reason} {count:,}' for reason, count in skipped.items()) or 'none'}",
        highlight=False,
    )


@app.command("runs")
def reports_runs(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """The latest report runs, newest first, as JSON lines."""
    with application() as app:
        emit_lines(ReportRunOut.of(run) for run in list_runs(app.uow_factory, limit=limit))


@app.command("status")
def reports_status(run_id: Annotated[str, typer.Argument(metavar="RUN", help="A run id.")]) -> None:
    """One report run (JSON), with the files it published."""
    with application() as app:
        run = get_run(run_id, app.uow_factory)
        emit(ReportRunFilesOut.of(run, files=app.reports.files(run_id)))
