"""The event commands: ``ingest`` (with its progress), ``counters`` and ``events read``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from courseinfra.entrypoints.cli.common import (
    Failure,
    application,
    counters_table,
    emit,
    emit_lines,
    err,
    print_report,
)
from courseinfra.entrypoints.schemas.events import StreamEntryOut
from courseinfra.entrypoints.workers import ingest_in_workers
from courseinfra.services.events import job_counters
from courseinfra.services.events.ingest import ingest as run_ingest
from courseinfra.services.events.ingest import read_lines
from courseinfra.services.events.streams import read_stream

app = typer.Typer(no_args_is_help=True, help="The event streams relayed events leave by.")


def ingest_command(
    path: Annotated[str, typer.Argument(help="A file of JSON lines, or - for stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's counters as JSON.")] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            max=64,
            help="Processes, each taking the events of its share of the enrolments, while this one "
            "relays (a file only); 0: all in this process.",
        ),
    ] = 0,
) -> None:
    """Process JSON lines of events, each routed to its job and finished before this returns.

    Events that are not processed are kept (``courseinfra failed list``); the exit code is 1 if any
    failed, 0 otherwise (skipped events are not failures). With ``--workers N``, N processes share the
    file by enrolment (an enrolment's events are applied in file order, those of different enrolments
    in any order) and this process relays their events meanwhile: on two cores, ``--workers 1`` runs
    the job and its relay side by side.
    """
    if workers and path == "-":
        raise Failure("--workers needs a file: the workers each read it (stdin can be read once)")
    try:
        stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as error:
        raise Failure(f"cannot read {path}: {error.strerror}") from None
    source = "stdin" if path == "-" else Path(path).name
    total = None if path == "-" else _count_lines(Path(path))
    with stream, application() as app, _ingest_progress(f"ingest {source}", total, not as_json) as advance:
        if workers:
            report = ingest_in_workers(
                app.settings,
                Path(path),
                source,
                workers,
                chunk_size=app.settings.ingest_chunk_size,
                on_progress=advance,
                relay=app.relay,
            )
        else:
            report = run_ingest(
                read_lines(stream, max_bytes=app.settings.ingest_max_line_bytes),
                source,
                app.router,
                app.uow_factory,
                chunk_size=app.settings.ingest_chunk_size,
                on_progress=advance,
            )
    print_report(report, as_json)


def _count_lines(path: Path) -> int:
    """The lines of a file, counted by reading it in blocks (a second for about a gigabyte)."""
    lines = 0
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            lines += block.count(b"\n")
    return lines


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} lines/s")


#: Seconds between two progress lines when standard error is not a terminal.
PROGRESS_LINE_EVERY = 5.0


@contextmanager
def _ingest_progress(label: str, total: int | None, bar: bool) -> Iterator[Callable[[int], None]]:
    """A function to call with each count of lines done. On a terminal (and ``bar``): a bar with the
    total, the rate and the time left; elsewhere (a log), one line every few seconds on stderr."""
    if bar and err.is_terminal:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        extra = (TaskProgressColumn(), _RateColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, *extra, console=err, transient=True) as progress:
            task = progress.add_task(label, total=total)
            yield lambda lines: progress.advance(task, lines)
        return
    started = last = time.monotonic()
    done = 0

    def advance(lines: int) -> None:
        nonlocal done, last
        done += lines
        now = time.monotonic()
        if now - last < PROGRESS_LINE_EVERY:
            return
        last = now
        rate = done / (now - started)
        of_total = "" if total is None else f" of {total:,} ({100 * done // max(total, 1)}%)"
        left = "" if total is None or rate == 0 else f", about {_duration(max(total - done, 0) / rate)} left"
        err.print(
            f"{label}: {done:,} lines{of_total}, {rate:,.0f} lines/s{left}", highlight=False, soft_wrap=True
        )

    yield advance


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def counters_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Cumulative counters of every job."""
    with application() as app:
        counters = job_counters(app.uow_factory)
    if as_json:
        emit(counters)
    else:
        counters_table(counters, "cumulative")


@app.command("read")
def events_read(
    event_type: Annotated[
        str,
        typer.Argument(metavar="TYPE", help="The event type, e.g. courseinfra.learning.audit.emitted.v1."),
    ],
    after: Annotated[str | None, typer.Option("--after", help="Only entries after this position.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Relayed events of one type from the event stream, oldest first, as JSON lines (position, id, key,
    payload). When the page is full, standard error tells the ``--after`` of the next one."""
    with application() as app:
        entries = read_stream(app.stream, event_type, after=after, limit=limit)
    emit_lines(StreamEntryOut.of(entry) for entry in entries)
    if len(entries) == limit:
        err.print(f"more may follow: --after {entries[-1].position}", highlight=False)
