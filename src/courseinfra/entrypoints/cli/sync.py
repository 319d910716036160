"""The ``sync`` commands: the state of user groups linked to legacy groups, and their reconciliation."""

from __future__ import annotations

from typing import Annotated

import typer

from courseinfra.bootstrap import App
from courseinfra.entrypoints.cli.common import Failure, application, emit, run_every
from courseinfra.entrypoints.schemas.sync import ReconcileOut, SyncStatusOut
from courseinfra.services import sync

app = typer.Typer(no_args_is_help=True, help="User groups linked to legacy groups (cohorts, teams, tracks).")


@app.command("status")
def sync_status() -> None:
    """Every link whose user group and legacy group differ, the sync failures and the open drift
    (JSON). Exit code 1 when a link differs, a failure is recorded or drift is open."""
    with application() as app:
        status = sync.sync_status(app.uow_factory)
    emit(SyncStatusOut.of(status))
    if not status.clean:
        raise typer.Exit(1)


@app.command("reconcile")
def sync_reconcile(
    link: Annotated[str | None, typer.Option("--link", metavar="GROUP_ID", help="One linked group.")] = None,
    every_link: Annotated[bool, typer.Option("--all", help="Every linked group.")] = False,
    every: Annotated[
        float | None,
        typer.Option(
            "--every",
            min=1,
            metavar="SECONDS",
            help="Reconcile now and then every SECONDS until interrupted, one JSON line per round.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report the drift and what would be fixed; write nothing.")
    ] = False,
) -> None:
    """Compare both sides of a linked group (--link) or of every one (--all) and apply each link's
    authority: legacy and both pull the legacy membership, user_group pushes the user group's to the
    legacy group. Prints per link the drift found and whether it was fixed (JSON). Exit code 1 when a
    link could not be reconciled."""
    if (link is None) == (not every_link):
        raise Failure("give either --link GROUP_ID or --all", exit_code=2)

    def round_(app: App) -> ReconcileOut:
        return ReconcileOut.of(app.groups.reconcile(link, dry_run=dry_run))

    if every is not None:
        run_every(every, lambda app: round_(app).model_dump(mode="json"), "reconcile")
        return
    with application() as app:
        report = round_(app)
    emit(report)
    if report.failed:
        raise typer.Exit(1)
