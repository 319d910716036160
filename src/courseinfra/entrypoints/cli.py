"""The ``courseinfra`` command line. Data goes to standard output (JSON where asked); progress, tables
for people and errors go to standard error."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
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
from rich.table import Table
from rich.text import Text

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.cache_layout import entries_by_kind, to_json_value
from courseinfra.domain.errors import DomainError
from courseinfra.domain.job_requests import Outcome
from courseinfra.domain.progress import EnrolmentKey
from courseinfra.domain.users import InvalidTimestamp, RecordFormat, guess_format, parse_timestamp
from courseinfra.entrypoints.serialize import (
    activity_json,
    batch_json,
    criteria_types_json,
    enrolment_json,
    failed_event_json,
    group_json,
    group_summary_json,
    import_report_json,
    member_json,
    members_import_json,
    membership_change_json,
    preview_json,
    refresh_all_json,
    refresh_json,
    report_run_json,
    report_selection_json,
    stream_entry_json,
    user_json,
)
from courseinfra.entrypoints.workers import ingest_in_workers
from courseinfra.services import content, course_metrics, enrolments, groups, users
from courseinfra.services.ingest import IngestReport, read_lines, replay_failed
from courseinfra.services.ingest import ingest as run_ingest
from courseinfra.services.ports import CourseBatch, RefreshResult, ReportRun
from courseinfra.services.relation_cache import published_roots, rebuild_requests
from courseinfra.services.reports import (
    batches_to_report,
    generate_reports,
    get_run,
    list_runs,
)
from courseinfra.services.streams import read_stream
from courseinfra.settings import SettingsError, load_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Course infrastructure jobs.")
content_cli = typer.Typer(no_args_is_help=True, help="The hierarchy store: store and publish content.")
cache_cli = typer.Typer(no_args_is_help=True, help="Read the relation cache.")
failed_cli = typer.Typer(no_args_is_help=True, help="Events that were not processed: list and replay.")
db_cli = typer.Typer(no_args_is_help=True, help="The database schema.")
batches_cli = typer.Typer(no_args_is_help=True, help="Course batches: create, list, read.")
enrolments_cli = typer.Typer(no_args_is_help=True, help="Enrolments and their progress.")
activity_cli = typer.Typer(no_args_is_help=True, help="Course and unit metrics of an enrolment.")
audit_cli = typer.Typer(no_args_is_help=True, help="The AUDIT events emitted for enrolments.")
events_cli = typer.Typer(no_args_is_help=True, help="The event streams relayed events leave by.")
users_cli = typer.Typer(no_args_is_help=True, help="The user directory: import, read, logins, profiles.")
reports_cli = typer.Typer(no_args_is_help=True, help="Course progress reports, for TPD batches only.")
groups_cli = typer.Typer(
    no_args_is_help=True, help="User groups: define them by criteria, refresh, preview and explain them."
)
cli.add_typer(content_cli, name="content")
cli.add_typer(cache_cli, name="cache")
cli.add_typer(failed_cli, name="failed")
cli.add_typer(db_cli, name="db")
cli.add_typer(batches_cli, name="batches")
cli.add_typer(enrolments_cli, name="enrolments")
cli.add_typer(activity_cli, name="activity")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(events_cli, name="events")
cli.add_typer(users_cli, name="users")
cli.add_typer(reports_cli, name="reports")
cli.add_typer(groups_cli, name="groups")
sync_cli = typer.Typer(
    no_args_is_help=True, help="User groups linked to legacy groups (cohorts, teams, tracks)."
)
cli.add_typer(sync_cli, name="sync")

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


def emit(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")


def emit_lines(values: Iterable[Any]) -> None:
    """One compact JSON document a line (for ``jq``, ``grep`` and paging)."""
    for value in values:
        sys.stdout.write(orjson.dumps(value).decode() + "\n")


def read_json_file(path: Path) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        raise Failure(f"cannot read {path}: {error.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise Failure(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None


@content_cli.command("put")
def content_put(path: Annotated[Path, typer.Argument(help="A hierarchy JSON file, or - for stdin.")]) -> None:
    """Store a hierarchy (without publishing it)."""
    with application() as app:
        stored = content.put_hierarchy(read_json_file(path), app.uow_factory())
    emit({"identifier": stored.identifier, "version": stored.version})


@content_cli.command("publish")
def content_publish(
    path: Annotated[
        Path | None, typer.Argument(help="A hierarchy JSON file to store first, or - for stdin.")
    ] = None,
    identifier: Annotated[
        str | None, typer.Option("--id", help="Publish the stored hierarchy of this root.")
    ] = None,
) -> None:
    """Store (from PATH) and publish a hierarchy; the relation cache is updated before this returns."""
    if (path is None) == (identifier is None):
        raise Failure("give either a PATH or --id", exit_code=2)
    with application() as app:
        if path is not None:
            identifier = content.put_hierarchy(read_json_file(path), app.uow_factory()).identifier
        assert identifier is not None
        with app.uow_factory() as uow:
            before = uow.failed_events.last_id()
        event = content.publish(identifier, app.uow_factory())
        app.relay()
        keys = app.cache.owned_keys(identifier)
        with app.uow_factory() as uow:
            since = uow.failed_events.list(outcomes=tuple(Outcome), after_id=before, limit=1000)
    mine = [p for p in since if p.source.startswith("outbox:")]
    emit(
        {
            "identifier": identifier,
            "version": event.version,
            "event": event.job_request(),
            "cache": entries_by_kind(dict.fromkeys(keys, None)),  # type: ignore[arg-type]
            "cache_keys": len(keys),
            "failed": [{"id": p.id, "code": p.code, "reason": p.reason} for p in mine],
        }
    )


@content_cli.command("get")
def content_get(identifier: str) -> None:
    """Print a stored hierarchy with its version."""
    with application() as app, app.uow_factory() as uow:
        stored = uow.hierarchies.get(identifier)
    if stored is None:
        raise Failure(f"no hierarchy is stored for {identifier}")
    emit(
        {
            "identifier": stored.identifier,
            "version": stored.version,
            "published_at": stored.published_at.isoformat() if stored.published_at else None,
            "hierarchy": stored.hierarchy,
        }
    )


@cli.command("ingest")
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
        app.relay()
    _report(report, as_json)


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


def _report(report: IngestReport, as_json: bool) -> None:
    """Print a run's failures (stderr) and counters; exit 1 if any event failed."""
    for rejected in report.rejected:
        if rejected.outcome is Outcome.FAILED:
            err.print(
                f"[red]failed[/] {rejected.source}: {rejected.code}: {rejected.reason}",
                highlight=False,
                soft_wrap=True,
            )
    if as_json:
        emit(report.as_json())
    else:
        _counters_table(report.as_json()["jobs"], "this run")  # type: ignore[arg-type]
    if report.counters.total("failed"):
        raise typer.Exit(1)


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
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


def _counters_table(jobs: dict[str, dict[str, int]], title: str) -> None:
    table = Table(title=f"job counters ({title})")
    for column in ("job", "total", "success", "skipped", "failed", "cache-writes"):
        table.add_column(column, justify="left" if column == "job" else "right")
    for job, counts in sorted(jobs.items()):
        table.add_row(
            job, *(str(counts.get(c, 0)) for c in ("total", "success", "skipped", "failed", "cache-writes"))
        )
    err.print(table)


AsOfOption = Annotated[
    datetime | None,
    typer.Option(
        "--as-of", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="The report date; default today (UTC)."
    ),
]


@reports_cli.command("batches")
def reports_batches(as_of: AsOfOption = None) -> None:
    """The ongoing batches a report run would cover, and every other one with its reason (JSON)."""
    day = _day(as_of) or datetime.now(UTC).date()
    with application() as app, app.uow_factory() as uow:
        selection = batches_to_report(uow, app.report_options.accepted, day)
    emit(report_selection_json(selection))


@reports_cli.command("generate")
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
    day = _day(as_of) or datetime.now(UTC).date()
    with application() as app:
        archive = app.report_archive(out)
        with _progress(True) as progress:
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
    emit(report_run_json(run))
    folder = (out or app.settings.reports_path) / day.isoformat()
    err.print(
        f"{run.batches_done} batches, {run.rows_written:,} rows in {folder}; "
        f"skipped: {run.outcome.get('skipped_counts') or 'none'}",
        highlight=False,
    )


@reports_cli.command("runs")
def reports_runs(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """The latest report runs, newest first, as JSON lines."""
    with application() as app:
        emit_lines(report_run_json(run) for run in list_runs(app.uow_factory, limit))


@reports_cli.command("status")
def reports_status(run_id: Annotated[str, typer.Argument(metavar="RUN", help="A run id.")]) -> None:
    """One report run (JSON), with the files it published."""
    with application() as app:
        run = get_run(app.uow_factory, run_id)
        emit({**report_run_json(run), "files": app.reports.files(run_id)})


@cli.command("counters")
def counters_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Cumulative counters of every job."""
    with application() as app, app.uow_factory() as uow:
        counters = uow.counters.all()
    if as_json:
        emit(counters)
    else:
        _counters_table(counters, "cumulative")


@cache_cli.command("get")
def cache_get(key: str) -> None:
    """The value of KEY as JSON: a sorted array for a set, the ordered array for a list, null if absent."""
    with application() as app:
        emit(to_json_value(app.cache.get(key)))


@cache_cli.command("rebuild")
def cache_rebuild(
    roots: Annotated[list[str] | None, typer.Argument(help="Roots to rebuild.")] = None,
    rebuild_all: Annotated[bool, typer.Option("--all", help="Every published root in the store.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's counters as JSON.")] = False,
) -> None:
    """Rebuild the relation cache from the hierarchy store (after a cache was lost or flushed)."""
    if not roots and not rebuild_all:
        raise Failure("give roots or --all", exit_code=2)
    with application() as app, _progress(not as_json) as progress:
        selected = list(published_roots(app.uow_factory)) if rebuild_all else list(roots or [])
        task = progress.add_task("rebuild", total=len(selected))
        report = run_ingest(
            rebuild_requests(selected),
            "rebuild",
            app.router,
            app.uow_factory,
            chunk_size=app.settings.ingest_chunk_size,
            on_progress=lambda n: progress.advance(task, n),
        )
        app.relay()
    _report(report, as_json)


@cache_cli.command("show")
def cache_show(root: str) -> None:
    """Every key the relation cache holds for ROOT, with its value."""
    with application() as app:
        keys = sorted(app.cache.owned_keys(root))
        values = app.cache.get_many(keys)
    emit({key: to_json_value(values[key]) for key in keys})


@failed_cli.command("list")
def failed_list(
    job: Annotated[str | None, typer.Option(help="Only this job's events.")] = None,
    skipped: Annotated[bool, typer.Option("--skipped", help="Also skipped events.")] = False,
    resolved: Annotated[bool, typer.Option("--resolved", help="Also events replayed successfully.")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    after: Annotated[int, typer.Option(help="Only ids above this one (paging).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Events kept because they were not processed, oldest first."""
    outcomes = (Outcome.FAILED, Outcome.SKIPPED) if skipped else (Outcome.FAILED,)
    with application() as app, app.uow_factory() as uow:
        events = uow.failed_events.list(
            job=job, outcomes=outcomes, include_resolved=resolved, limit=limit, after_id=after
        )
    if as_json or not sys.stdout.isatty():
        for event in events:
            sys.stdout.write(orjson.dumps(failed_event_json(event)).decode() + "\n")
        return
    table = Table(title=f"{len(events)} kept event(s)")
    for column in ("id", "job", "outcome", "code", "source", "attempts", "reason"):
        table.add_column(column)
    for event in events:
        table.add_row(
            str(event.id),
            event.job,
            event.outcome.value,
            event.code,
            event.source,
            str(event.attempts),
            event.reason,
        )
    Console().print(table)


@failed_cli.command("replay")
def failed_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Ids to replay.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every unresolved failed event.")] = False,
    job: Annotated[str | None, typer.Option(help="With --all: only this job's events.")] = None,
) -> None:
    """Run kept events through their jobs again; print one JSON line per event."""
    if not ids and not replay_all:
        raise Failure("give event ids or --all", exit_code=2)
    with application() as app:
        with app.uow_factory() as uow:
            if replay_all:
                events = []
                after = 0
                while page := uow.failed_events.list(job=job, after_id=after, limit=1000):
                    events += page
                    after = page[-1].id
            else:
                found = {i: uow.failed_events.get(i) for i in ids or []}
                missing = [str(i) for i, event in found.items() if event is None]
                if missing:
                    raise Failure(f"no failed event with id {', '.join(missing)}")
                events = [event for event in found.values() if event is not None]
        results = replay_failed(events, app.router, app.uow_factory)
        app.relay()
    for result in results:
        sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")
    if any(not result.resolved for result in results):
        raise typer.Exit(1)


class EnrolmentType(StrEnum):
    OPEN = "open"
    INVITE_ONLY = "invite-only"


UserArg = Annotated[str, typer.Argument(metavar="USER", help="The user id.")]
CourseArg = Annotated[str, typer.Argument(metavar="COURSE", help="The course id.")]
BatchArg = Annotated[str, typer.Argument(metavar="BATCH", help="The batch id.")]
DateOption = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], metavar="YYYY-MM-DD")]


def _day(value: datetime | None) -> date | None:
    return None if value is None else value.date()


@batches_cli.command("create")
def batches_create(
    course: Annotated[str, typer.Option("--course", help="The course (a stored hierarchy's root).")],
    batch: Annotated[str, typer.Option("--batch", help="The new batch's id.")],
    name: Annotated[str, typer.Option("--name")],
    description: Annotated[str | None, typer.Option("--description")] = None,
    start: DateOption = None,
    end: DateOption = None,
    enrolment_end: Annotated[
        datetime | None,
        typer.Option(
            "--enrolment-end", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="Last day to enrol."
        ),
    ] = None,
    enrolment_type: Annotated[EnrolmentType, typer.Option("--enrolment-type")] = EnrolmentType.OPEN,
    mentors: Annotated[list[str] | None, typer.Option("--mentor", help="A mentor (repeatable).")] = None,
    created_for: Annotated[
        list[str] | None, typer.Option("--created-for", help="An organisation (repeatable).")
    ] = None,
    created_by: Annotated[str | None, typer.Option("--created-by")] = None,
) -> None:
    """Create a batch of a course; print it as JSON."""
    new = CourseBatch(
        batch_id=batch,
        course_id=course,
        name=name,
        created_at=datetime.now(UTC),
        description=description,
        start_date=_day(start),
        end_date=_day(end),
        enrollment_end_date=_day(enrolment_end),
        enrollment_type=enrolment_type.value,
        created_for=tuple(created_for or ()),
        mentors=tuple(mentors or ()),
        created_by=created_by,
    )
    with application() as app:
        created = enrolments.create_batch(new, app.uow_factory())
    emit(batch_json(created))


@batches_cli.command("list")
def batches_list(
    course: Annotated[str | None, typer.Option("--course", help="Only this course's batches.")] = None,
    after: Annotated[str, typer.Option("--after", help="Only batch ids above this one (paging).")] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Batches in batch id order, as JSON lines."""
    with application() as app, app.uow_factory() as uow:
        found = uow.batches.list(course_id=course, after=after, limit=limit)
    emit_lines(batch_json(b) for b in found)


@batches_cli.command("get")
def batches_get(batch: BatchArg) -> None:
    """One batch as JSON."""
    with application() as app, app.uow_factory() as uow:
        found = uow.batches.get(batch)
    if found is None:
        raise enrolments.BatchNotFound(f"batch {batch} does not exist")
    emit(batch_json(found))


@cli.command("enrol")
def enrol_command(
    user: UserArg,
    batch: BatchArg,
    added_by: Annotated[str | None, typer.Option("--added-by", help="Who enrolled the user.")] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="The enrolment's mode (track); default audit.")
    ] = None,
) -> None:
    """Enrol USER in BATCH (again, if they left it: their progress is kept); print the enrolment with
    ``created``, false if it existed."""
    with application() as app:
        enrolment, created = enrolments.enrol(user, batch, app.uow_factory(), added_by=added_by, mode=mode)
        app.relay()
    emit({**enrolment_json(enrolment), "created": created})


@cli.command("unenrol")
def unenrol_command(user: UserArg, batch: BatchArg) -> None:
    """Mark USER's enrolment in BATCH inactive (its progress is kept); print the enrolment."""
    with application() as app:
        enrolment = enrolments.unenrol(user, batch, app.uow_factory())
        app.relay()
    emit(enrolment_json(enrolment))


@enrolments_cli.command("get")
def enrolments_get(user: UserArg, course: CourseArg, batch: BatchArg) -> None:
    """One enrolment with its progress (the columns of ``user_enrolments``)."""
    with application() as app:
        enrolment = enrolments.get_enrolment(EnrolmentKey(user, course, batch), app.uow_factory())
    emit(enrolment_json(enrolment))


@enrolments_cli.command("recompute")
def enrolments_recompute(
    course: Annotated[str | None, typer.Option("--course", help="Every batch of this course.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Every participant of this batch.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="With --batch: this learner only.")] = None,
) -> None:
    """Re-derive progress and metrics from the stored statuses and the course's current relation cache
    (after a cache rebuild or a fix of the rules); emit only the AUDIT events not emitted before."""
    if (course is None) == (batch is None):
        raise Failure("give exactly one of --course and --batch", exit_code=2)
    if user is not None and batch is None:
        raise Failure("--user needs --batch", exit_code=2)
    with application() as app:
        done = course_metrics.recompute_enrolments(
            app.views, app.uow_factory, course_id=course, batch_id=batch, user_id=user
        )
        app.relay()
    emit({"enrolments": done.enrolments, "audit_events": done.audit_events})


@enrolments_cli.command("list")
def enrolments_list(
    user: Annotated[str | None, typer.Option("--user", help="A user's enrolments.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="A batch's participants.")] = None,
    after: Annotated[
        str, typer.Option("--after", help="With --batch: only user ids above this one (paging).")
    ] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
) -> None:
    """The enrolments of a user (by course and batch) or of a batch (by user), as JSON lines."""
    if (user is None) == (batch is None):
        raise Failure("give exactly one of --user and --batch", exit_code=2)
    if user is not None and after:
        raise Failure("--after pages the participants of a --batch", exit_code=2)
    with application() as app, app.uow_factory() as uow:
        if batch is not None:
            if uow.batches.get(batch) is None:
                raise enrolments.BatchNotFound(f"batch {batch} does not exist")
            found = uow.enrolments.list_for_batch(batch, after_user=after, limit=limit)
        else:
            assert user is not None
            found = uow.enrolments.list_for_user(user)[:limit]
    emit_lines(enrolment_json(e) for e in found)


@activity_cli.command("get")
def activity_get(user: UserArg, course: CourseArg, batch: BatchArg) -> None:
    """The course's and each unit's metrics of an enrolment (``user_activity_agg``)."""
    key = EnrolmentKey(user, course, batch)
    with application() as app:
        enrolments.get_enrolment(key, app.uow_factory())
        metrics = enrolments.activity(key, app.uow_factory())
    emit(activity_json(metrics))


@audit_cli.command("list")
def audit_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's events.")] = None,
    course: Annotated[str | None, typer.Option("--course", help="Only this course's events.")] = None,
    after: Annotated[int, typer.Option("--after", min=0, help="Only entry ids above this one.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
) -> None:
    """AUDIT events in the order they were emitted, as JSON lines (telemetry v3). When the page is full,
    standard error tells the ``--after`` of the next one."""
    with application() as app:
        entries = enrolments.audit_events(
            app.uow_factory(), user_id=user, course_id=course, after_id=after, limit=limit
        )
    emit_lines(entry.telemetry for entry in entries)
    if len(entries) == limit:
        err.print(f"more may follow: --after {entries[-1].id}", highlight=False)


@events_cli.command("read")
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
    emit_lines(stream_entry_json(entry) for entry in entries)
    if len(entries) == limit:
        err.print(f"more may follow: --after {entries[-1].position}", highlight=False)


UserIdArg = Annotated[str, typer.Argument(metavar="ID", help="The user id.")]


@users_cli.command("import")
def users_import(
    path: Annotated[
        str, typer.Argument(metavar="FILE", help="A CSV, JSON or JSON lines file, or - for stdin.")
    ],
    fmt: Annotated[
        RecordFormat | None,
        typer.Option("--format", help="The file's format; by default, from its extension."),
    ] = None,
) -> None:
    """Insert or update the users of FILE, all or nothing: if any row is bad, every bad row is printed
    (``line N: reason``, on standard error), nothing is imported and the exit code is 1. Prints the
    counts as JSON."""
    fmt = fmt or guess_format(path)
    if fmt is None:
        raise Failure(f"cannot tell the format of {path}: give --format csv, json or jsonl", exit_code=2)
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise Failure(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise Failure(f"{path} is not UTF-8 text: {error.reason} at byte {error.start}") from None
    with application() as app:
        report = users.import_users(text, fmt, app.uow_factory)
        app.relay()
    if not report.ok:
        for bad in report.errors:
            err.print(str(bad), highlight=False, soft_wrap=True, markup=False)
        raise Failure(f"{len(report.errors)} bad row(s) in {path}: nothing was imported")
    emit(import_report_json(report))


@users_cli.command("get")
def users_get(user: UserIdArg) -> None:
    """One user as JSON."""
    with application() as app:
        emit(user_json(users.get_user(user, app.uow_factory())))


@users_cli.command("list")
def users_list(
    organisation: Annotated[
        str | None, typer.Option("--organisation", help="Only this organisation's users.")
    ] = None,
    after: Annotated[str, typer.Option("--after", help="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Users in user id order, as JSON lines."""
    with application() as app, app.uow_factory() as uow:
        found = uow.users.list(after=after, limit=limit, organisation=organisation)
    emit_lines(user_json(u) for u in found)


@users_cli.command("login")
def users_login(
    user: UserIdArg,
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="TIMESTAMP", help="When, ISO 8601 with a zone (default: now)."),
    ] = None,
) -> None:
    """Record a login of ID; print the user with ``recorded``, false if a later login was known."""
    try:
        when = parse_timestamp(at) if at is not None else None
    except InvalidTimestamp as error:
        raise Failure(f"--at: {error}", exit_code=2) from None
    with application() as app:
        found, moved = users.record_login(user, app.uow_factory(), when)
        app.relay()
    emit({**user_json(found), "recorded": moved})


@users_cli.command("set-profile")
def users_set_profile(
    user: UserIdArg,
    assignments: Annotated[
        list[str] | None, typer.Argument(metavar="KEY=VALUE...", help="Profile fields to set.")
    ] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", help="A field to remove (repeatable).")
    ] = None,
) -> None:
    """Set (and with --unset remove) profile fields of ID; print the user."""
    changes: dict[str, str | None] = {}
    for assignment in assignments or []:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise Failure(f"{assignment!r} is not KEY=VALUE", exit_code=2)
        changes[key] = value
    for key in unset or []:
        if key in changes:
            raise Failure(f"{key} is both set and unset", exit_code=2)
        changes[key] = None
    if not changes:
        raise Failure("give KEY=VALUE fields or --unset KEY", exit_code=2)
    with application() as app:
        updated = users.update_profile(user, changes, app.uow_factory())
        app.relay()
    emit(user_json(updated))


GroupArg = Annotated[str, typer.Argument(metavar="ID", help="The group id.")]
CriteriaOption = Annotated[
    Path | None,
    typer.Option("--criteria", metavar="FILE", help="A criteria tree as JSON (a file, or - for stdin)."),
]
IfVersionOption = Annotated[
    int | None,
    typer.Option(
        "--if-version", min=1, metavar="N", help="Refuse (version-conflict) unless the group is at version N."
    ),
]


def _changed_json(view: groups.GroupView, result: RefreshResult | None) -> dict[str, Any]:
    return {**group_json(view), "refresh": None if result is None else refresh_json(result)}


@groups_cli.command("create")
def groups_create(
    group: GroupArg,
    name: Annotated[str, typer.Option("--name", help="Unique in its scope.")],
    scope: Annotated[
        str, typer.Option("--scope", help="instance, organisation:<name> or course:<course id>.")
    ],
    description: Annotated[str, typer.Option("--description")] = "",
    criteria: CriteriaOption = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", metavar="USER", help="Always a member (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", metavar="USER", help="Never a member (repeatable).")
    ] = None,
    frozen: Annotated[bool, typer.Option("--frozen", help="Keep the members: no refresh.")] = False,
    disabled: Annotated[
        bool, typer.Option("--disabled", help="Refresh only on demand (not by events or schedules).")
    ] = False,
) -> None:
    """Create a group and compute its membership (not for a frozen one); print it with ``refresh``."""
    definition = groups.GroupDefinition(
        name=name,
        scope=scope,
        description=description,
        enabled=not disabled,
        frozen=frozen,
        criteria=None if criteria is None else read_json_file(criteria),
        include=include or (),
        exclude=exclude or (),
    )
    with application() as app:
        view, result = app.sync.create_group(group, definition)
        app.relay()
    emit(_changed_json(view, result))


@groups_cli.command("get")
def groups_get(group: GroupArg) -> None:
    """One group with its include and exclude lists, as JSON."""
    with application() as app:
        emit(group_json(app.sync.get_group(group)))


@groups_cli.command("list")
def groups_list(
    scope: Annotated[str | None, typer.Option("--scope", help="Only this scope's groups.")] = None,
) -> None:
    """Every group by id (without its include and exclude lists), as JSON lines."""
    with application() as app:
        found = groups.list_groups(app.uow_factory(), scope=scope)
    emit_lines(group_summary_json(group) for group in found)


@groups_cli.command("update")
def groups_update(
    group: GroupArg,
    name: Annotated[str | None, typer.Option("--name")] = None,
    scope: Annotated[str | None, typer.Option("--scope")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    criteria: CriteriaOption = None,
    no_criteria: Annotated[
        bool, typer.Option("--no-criteria", help="Remove the criteria (only the include list admits).")
    ] = False,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", metavar="USER", help="Replace the include list (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", metavar="USER", help="Replace the exclude list (repeatable)."),
    ] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
    frozen: Annotated[bool | None, typer.Option("--freeze/--unfreeze")] = None,
    if_version: IfVersionOption = None,
) -> None:
    """Change the options given; the membership is refreshed when the rules changed (or the group is
    unfrozen), unless it is frozen. Print the group with ``refresh`` (null if none)."""
    if criteria is not None and no_criteria:
        raise Failure("give --criteria or --no-criteria, not both", exit_code=2)
    changes: dict[str, Any] = {
        key: value
        for key, value in {
            "name": name,
            "scope": scope,
            "description": description,
            "include": include,
            "exclude": exclude,
            "enabled": enabled,
            "frozen": frozen,
        }.items()
        if value is not None
    }
    if criteria is not None:
        changes["criteria"] = read_json_file(criteria)
    elif no_criteria:
        changes["criteria"] = None
    if not changes:
        raise Failure("nothing to change: give at least one option", exit_code=2)
    with application() as app:
        view, result = app.sync.update_group(group, expected_version=if_version, **changes)
        app.relay()
    emit(_changed_json(view, result))


@groups_cli.command("delete")
def groups_delete(group: GroupArg, if_version: IfVersionOption = None) -> None:
    """Delete a group, its overrides, members and history. A group linked to a team deletes
    the team; one linked to a cohort or a track follows COURSEINFRA_LEGACY_DELETE_POLICY."""
    with application() as app:
        outcome = app.sync.delete_group(group, expected_version=if_version)
    emit({"group_id": group, "deleted": outcome != "archived", "outcome": outcome})


@groups_cli.command("members")
def groups_members(
    group: GroupArg,
    after: Annotated[str, typer.Option("--after", help="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Members by user id with when and why they joined, as JSON lines. When the page is full, standard
    error tells the ``--after`` of the next one."""
    with application() as app, app.uow_factory() as uow:
        if uow.groups.get(group) is None:
            raise groups.GroupNotFound(f"no user group {group}")
        found = uow.memberships.members(group, after=after, limit=limit)
    emit_lines(member_json(member) for member in found)
    if len(found) == limit:
        err.print(f"more may follow: --after {found[-1].user_id}", highlight=False, markup=False)


@groups_cli.command("history")
def groups_history(
    group: GroupArg,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's joins and leaves.")] = None,
    after: Annotated[int, typer.Option("--after", min=0, help="Only ids above this one (paging).")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
) -> None:
    """Joins and leaves in the order they happened, with time and reason, as JSON lines."""
    with application() as app, app.uow_factory() as uow:
        if uow.groups.get(group) is None:
            raise groups.GroupNotFound(f"no user group {group}")
        found = uow.memberships.history(group, user_id=user, after_id=after, limit=limit)
    emit_lines(membership_change_json(change) for change in found)
    if len(found) == limit:
        err.print(f"more may follow: --after {found[-1].id}", highlight=False)


@groups_cli.command("preview")
def groups_preview(
    group: GroupArg,
    criteria: CriteriaOption = None,
    sample: Annotated[int, typer.Option(min=0, max=1000, help="How many ids of each kind to list.")] = 100,
) -> None:
    """Who a refresh would add and remove, with the stored criteria or those of --criteria; writes
    nothing."""
    tree = groups.UNSET if criteria is None else read_json_file(criteria)
    with application() as app:
        result = groups.preview_group(group, app.uow_factory(), app.registry, criteria=tree, sample=sample)
    emit(preview_json(result))


@groups_cli.command("explain")
def groups_explain(group: GroupArg, user: UserArg) -> None:
    """Why USER is or is not a member: stored membership, the decision now and every criterion's
    outcome."""
    with application() as app:
        emit(groups.explain_membership(group, user, app.uow_factory(), app.registry))


@groups_cli.command("refresh")
def groups_refresh(
    group: Annotated[str | None, typer.Argument(metavar="[ID]", help="The group id.")] = None,
    refresh_all: Annotated[bool, typer.Option("--all", help="Every enabled, unfrozen group.")] = False,
    every: Annotated[
        float | None,
        typer.Option(
            "--every",
            min=1,
            metavar="SECONDS",
            help="Refresh every enabled, unfrozen group now and then every SECONDS until interrupted, "
            "one JSON line per round (the scheduled refresh).",
        ),
    ] = None,
) -> None:
    """Re-evaluate a group (even a disabled one; a frozen one is refused), or with --all every enabled,
    unfrozen group, and apply the difference; print what changed."""
    if group is not None and every is not None:
        raise Failure("--every refreshes every group: give --all, not an ID", exit_code=2)
    if (group is None) == (not refresh_all and every is None):
        raise Failure("give either a group ID or --all", exit_code=2)
    if every is not None:
        _refresh_on_schedule(every)
        return
    with application() as app:
        if group is not None:
            refreshed, result = app.sync.refresh_group(group)
            app.relay()
            emit({"group_id": refreshed.group_id, **refresh_json(result)})
            return
        results = app.sync.refresh_all()
        app.relay()
    emit(refresh_all_json(results))


def _refresh_on_schedule(every: float) -> None:
    """Refresh all groups every ``every`` seconds until SIGINT or SIGTERM (exit code 0). A failed round
    is reported on standard error and the next one is tried."""
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
                    results = app.sync.refresh_all(trigger=groups.SCHEDULE)
                    app.relay()
                except Exception as error:
                    err.print(
                        f"refresh round at {started.isoformat()} failed: {type(error).__name__}: {error}",
                        highlight=False,
                        markup=False,
                        soft_wrap=True,
                    )
                else:
                    emit_lines([{"at": started.isoformat(), "groups": refresh_all_json(results)}])
                    sys.stdout.flush()
                stop.wait(every)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@groups_cli.command("import-members")
def groups_import_members(
    group: GroupArg,
    path: Annotated[str, typer.Argument(metavar="FILE", help="A CSV file, or - for stdin.")],
    if_version: IfVersionOption = None,
) -> None:
    """Add the users of a CSV file (a user_id column; an optional action column, include or exclude) to
    the group's overrides and refresh it, all or nothing: with any bad row, every one is printed
    (``line N: reason``, on standard error), nothing changes and the exit code is 1."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise Failure(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise Failure(f"{path} is not UTF-8 text: {error.reason} at byte {error.start}") from None
    with application() as app:
        try:
            view, result = groups.import_members(group, text, app.uow_factory(), expected_version=if_version)
        except groups.InvalidMembersFile as error:
            for line, reason in error.rows:
                err.print(f"line {line}: {reason}", highlight=False, soft_wrap=True, markup=False)
            raise Failure(f"{len(error.rows)} bad row(s) in {path}: nothing was imported") from None
        app.relay()
    emit(members_import_json(view, result))


@groups_cli.command("criteria-types")
def groups_criteria_types() -> None:
    """Every registered criterion type with its operators, scopes, facts and config JSON schema."""
    with application() as app:
        emit(criteria_types_json(app.registry))


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (done at start too, unless COURSEINFRA_AUTO_MIGRATE=false)."""
    from courseinfra.adapters.sql.engine import create_engine, migrate, schema_revision

    engine = create_engine(load_settings().sql_url)
    applied = migrate(engine)
    err.print(
        f"schema at revision {schema_revision(engine)}" + (" (upgraded)" if applied else " (already current)")
    )
    engine.dispose()


@cli.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json, Prometheus metrics at /metrics)."""
    import uvicorn

    from courseinfra.entrypoints.api import create_app

    uvicorn.run(create_app(), host=host, port=port)


def _fail(message: str, exit_code: int) -> None:
    sys.stderr.write(f"courseinfra: {message}\n")
    sys.exit(exit_code)


def main() -> None:
    try:
        # Outside standalone mode click returns the exit code of typer.Exit instead of raising it.
        code = cli(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except SettingsError as error:
        _fail(str(error), 2)
    except Failure as error:
        _fail(str(error), error.exit_code)
    except DomainError as error:
        _fail(f"{error.code}: {error}", 1)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as error:
        import click

        # Usage errors (a bad option value, a missing argument): typer >= 0.26 raises those of its own
        # copy of click, which are not click's classes.
        show = getattr(error, "show", None)
        if isinstance(error, click.ClickException | typer.TyperException) and callable(show):
            show()
            sys.exit(getattr(error, "exit_code", 2))
        raise


@sync_cli.command("status")
def sync_status() -> None:
    """Every link whose user group and legacy group differ, and the sync failures (JSON). Exit code 1
    when a link differs or a failure is recorded."""
    with application() as app:
        status = app.sync.status()
    emit(status)
    if status["differing"] or status["failures"]:
        raise typer.Exit(1)


@groups_cli.command("add-members")
def groups_add_members(
    group: GroupArg, users_: Annotated[list[str], typer.Argument(metavar="USER...")]
) -> None:
    """Add users to a group linked to a legacy group: to the legacy group first (a cohort moves them out
    of their previous cohort, and out of the group linked to it)."""
    with application() as app:
        result = app.sync.add_members(group, users_)
        app.relay()
    emit({"group_id": group, **refresh_json(result)})


@groups_cli.command("remove-members")
def groups_remove_members(
    group: GroupArg, users_: Annotated[list[str], typer.Argument(metavar="USER...")]
) -> None:
    """Remove users from a group linked to a cohort or a team: from the legacy group first."""
    with application() as app:
        result = app.sync.remove_members(group, users_)
        app.relay()
    emit({"group_id": group, **refresh_json(result)})
