"""The ``trail`` command: who changed what."""

from __future__ import annotations

from typing import Annotated

import typer

from courseinfra.entrypoints.cli.common import application, emit_lines
from courseinfra.entrypoints.schemas.common import MAX_ID
from courseinfra.entrypoints.schemas.trail import ChangeOut
from courseinfra.services.trail.queries import list_changes

app = typer.Typer(no_args_is_help=True, help="The trail of who changed what.")


@app.command("list")
def trail_list(
    after: Annotated[
        int, typer.Option(min=0, max=MAX_ID, help="Only change ids above this one (paging).")
    ] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    target: Annotated[str | None, typer.Option(help="Only changes to this: group:g1, user:u1, ...")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor's changes: a token id, cli:<user>.")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="Only actions starting with this: group., token.")
    ] = None,
) -> None:
    """Changes to groups, members, users, content, batches, enrolments, replays and tokens, oldest
    first (JSON lines): who made each, when, through what and from where."""
    with application() as app:
        found = list_changes(
            app.uow_factory, after_id=after, limit=limit, target=target, subject=actor, action_prefix=action
        )
    emit_lines(ChangeOut.of(record) for record in found)
