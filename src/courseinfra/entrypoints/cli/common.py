"""What the features' commands share: errors, the application, JSON output, input, progress, counters."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import orjson
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.job_requests import Outcome
from courseinfra.domain.quoting import EXACT_BELOW, plain_number
from courseinfra.entrypoints.schemas.events import IngestOut
from courseinfra.services.events.ingest import IngestReport
from courseinfra.settings import load_settings

err = Console(stderr=True)


class Failure(Exception):
    """An error for the person at the terminal: printed on one line, exit code 1 or as given."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def application() -> Iterator[App]:
    app = bootstrap(load_settings())
    try:
        yield app
    finally:
        app.close()


def _shape(value: object) -> Any:
    """A response model as the API answers it, so that a command prints the same JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def emit(value: Any) -> None:
    """One JSON document, indented, keys sorted; response models as the API answers them."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    sys.stdout.write(orjson.dumps(value, default=_shape, option=option).decode() + "\n")


def emit_lines(values: Iterable[Any]) -> None:
    """One compact JSON document a line (for ``jq``, ``grep`` and paging)."""
    for value in values:
        sys.stdout.write(orjson.dumps(value, default=_shape).decode() + "\n")


def run_every(every: float, round_: Callable[[App], Any], name: str) -> None:
    """Run ``round_`` now and then every ``every`` seconds until SIGINT or SIGTERM (exit code 0), one
    JSON line a round (``{"at": ..., **what it returned}``). A failed round is reported on standard
    error and the next one is tried; a second Ctrl-C interrupts the round under way."""
    stop = threading.Event()

    def request_stop(_signal: int, _frame: FrameType | None) -> None:
        # The round under way finishes; a second Ctrl-C interrupts it.
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with application() as app:
            while not stop.is_set():
                started = datetime.now(UTC)
                try:
                    result = round_(app)
                except Exception as error:
                    err.print(
                        f"{name} round at {started.isoformat()} failed: {type(error).__name__}: {error}",
                        highlight=False,
                        markup=False,
                        soft_wrap=True,
                    )
                else:
                    emit_lines([{"at": started.isoformat(), **result}])
                    sys.stdout.flush()
                stop.wait(every)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def read_json_file(path: Path) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        raise Failure(f"cannot read {path}: {error.strerror}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise Failure(f"{path}: the JSON nests objects and arrays too deeply to be read") from None
    except json.JSONDecodeError as error:
        raise Failure(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None


def read_text(path: str) -> str:
    """The text of a UTF-8 file (without a byte order mark), or of stdin for ``-``."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise Failure(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise Failure(f"{path} is not UTF-8 text: {error.reason} at byte {error.start}") from None


UserArg = Annotated[str, typer.Argument(metavar="USER", help="The user id.")]
CourseArg = Annotated[str, typer.Argument(metavar="COURSE", help="The course id.")]
BatchArg = Annotated[str, typer.Argument(metavar="BATCH", help="The batch id.")]


def as_date(value: datetime | None) -> date | None:
    return None if value is None else value.date()


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled or not err.is_terminal,
        transient=True,
    )
    with progress:
        yield progress


def cell(value: object) -> str:
    """A value as a table or a line of text shows it: ``true`` and ``false`` as the JSON output spells them,
    nothing for null, whole numbers with thousands separators (``1,204``, also a float that holds one),
    other numbers in plain decimals (``0.25``), never in exponent form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < EXACT_BELOW:
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return plain_number(value)
    return str(value)


def counted(n: int, one: str, many: str) -> str:
    """``1 batch``, ``2 batches``, ``1,204 rows``."""
    return f"{n:,} {one if n == 1 else many}"


def counters_table(jobs: dict[str, dict[str, int]], title: str) -> None:
    table = Table(title=f"job counters ({title})")
    # A job's name is never cut, whatever the width the console guesses (80 columns off a terminal).
    table.add_column(
        "job", justify="left", no_wrap=True, min_width=max((len(job) for job in jobs), default=3)
    )
    for column in ("total", "success", "skipped", "failed", "cache-writes"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for job, counts in sorted(jobs.items()):
        table.add_row(
            job, *(cell(counts.get(c, 0)) for c in ("total", "success", "skipped", "failed", "cache-writes"))
        )
    err.print(table, width=max(err.width, 100), crop=False)  # off a terminal the console guesses 80 columns


def print_report(report: IngestReport, as_json: bool) -> None:
    """Print a run's failures (stderr) and counters; exit 1 if any event failed."""
    for rejected in report.rejected:
        if rejected.outcome is Outcome.FAILED:
            err.print(
                f"[red]failed[/] {rejected.source}: {rejected.code}: {rejected.reason}",
                highlight=False,
                soft_wrap=True,
            )
    shape = IngestOut.of(report)
    if as_json:
        emit(shape)
    else:
        counters_table(shape.jobs, "this run")
    if report.counters.total("failed"):
        raise typer.Exit(1)
