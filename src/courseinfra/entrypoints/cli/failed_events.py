"""The ``failed`` commands: list the events that were not processed and replay them."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from courseinfra.domain.job_requests import Outcome
from courseinfra.entrypoints.cli.common import Failure, application, cell, emit_lines
from courseinfra.entrypoints.schemas.common import MAX_ID
from courseinfra.entrypoints.schemas.failed_events import FailedEventOut, ReplayOut
from courseinfra.services import failed_events
from courseinfra.services.events.ingest import replay_failed
from courseinfra.services.failed_events.ports import FailedEvent

app = typer.Typer(no_args_is_help=True, help="Events that were not processed: list and replay.")


@app.command("list")
def failed_list(
    job: Annotated[str | None, typer.Option(help="Only this job's events.")] = None,
    code: Annotated[str | None, typer.Option(help="Only events kept with this code.")] = None,
    skipped: Annotated[bool, typer.Option("--skipped", help="Also skipped events.")] = False,
    resolved: Annotated[bool, typer.Option("--resolved", help="Also events replayed successfully.")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    after: Annotated[int, typer.Option(min=0, max=MAX_ID, help="Only ids above this one (paging).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Events kept because they were not processed, oldest first."""
    outcomes = (Outcome.FAILED, Outcome.SKIPPED) if skipped else (Outcome.FAILED,)
    with application() as app:
        events = failed_events.list_failed_events(
            app.uow_factory,
            job=job,
            code=code,
            outcomes=outcomes,
            include_resolved=resolved,
            limit=limit,
            after_id=after,
        )
    if as_json or not sys.stdout.isatty():
        emit_lines(FailedEventOut.of(event) for event in events)
        return
    Console().print(kept_table(events))


def kept_table(events: Sequence[FailedEvent]) -> Table:
    """The kept events as ``failed list`` shows them on a terminal."""
    table = Table(title=f"{len(events)} kept event(s)")
    for column in ("id", "job", "outcome", "code", "source", "attempts", "reason"):
        table.add_column(column)
    for event in events:
        # Text, not markup: a source or a reason quotes what was sent, brackets included.
        table.add_row(
            str(event.id),
            event.job,
            event.outcome.value,
            event.code,
            Text(event.source),
            cell(event.attempts),
            Text(event.reason),
        )
    return table


@app.command("replay")
def failed_replay(
    ids: Annotated[list[int] | None, typer.Argument(min=1, max=MAX_ID, help="Ids to replay.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every unresolved failed event.")] = False,
    job: Annotated[str | None, typer.Option(help="With --all: only this job's events.")] = None,
    code: Annotated[str | None, typer.Option(help="With --all: only events kept with this code.")] = None,
) -> None:
    """Run kept events through their jobs again; print one JSON line per event."""
    if not ids and not replay_all:
        raise Failure("give event ids or --all", exit_code=2)
    if ids and (job or code):
        raise Failure("--job and --code choose among all open events: give them with --all", exit_code=2)
    with application() as app:
        if replay_all:
            events = failed_events.open_failed_events(app.uow_factory, job=job, code=code)
        else:
            events = failed_events.get_failed_events(ids or [], app.uow_factory)
        results = replay_failed(events, app.router, app.uow_factory)
    emit_lines(ReplayOut.of(result) for result in results)
    if any(not result.resolved for result in results):
        raise typer.Exit(1)
