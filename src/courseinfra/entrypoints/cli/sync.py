"""The ``sync`` commands: the state of user groups linked to legacy groups."""

from __future__ import annotations

import typer

from courseinfra.entrypoints.cli.common import application, emit
from courseinfra.entrypoints.schemas.sync import SyncStatusOut
from courseinfra.services import sync

app = typer.Typer(no_args_is_help=True, help="User groups linked to legacy groups (cohorts, teams, tracks).")


@app.command("status")
def sync_status() -> None:
    """Every link whose user group and legacy group differ, and the sync failures (JSON). Exit code 1
    when a link differs or a failure is recorded."""
    with application() as app:
        status = sync.sync_status(app.uow_factory)
    emit(SyncStatusOut.of(status))
    if not status.clean:
        raise typer.Exit(1)
