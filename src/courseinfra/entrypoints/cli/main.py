"""The root command with every feature's commands under it, and ``main``, which maps errors to exit codes."""

from __future__ import annotations

import getpass
import os
import socket
import sys

import typer

from courseinfra.domain.errors import DomainError
from courseinfra.domain.trail import Actor
from courseinfra.entrypoints.cli import (
    batches,
    cache,
    content,
    db,
    enrolments,
    events,
    failed_events,
    flink,
    groups,
    openedx,
    reports,
    serve,
    sync,
    tokens,
    trail,
    users,
)
from courseinfra.entrypoints.cli.common import Failure
from courseinfra.services.trail import acting_as
from courseinfra.settings import SettingsError

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Course infrastructure jobs.")
cli.add_typer(content.app, name="content")
cli.add_typer(cache.app, name="cache")
cli.add_typer(failed_events.app, name="failed")
cli.add_typer(db.app, name="db")
cli.add_typer(batches.app, name="batches")
cli.add_typer(enrolments.app, name="enrolments")
cli.add_typer(enrolments.activity_app, name="activity")
cli.add_typer(enrolments.audit_app, name="audit")
cli.add_typer(events.app, name="events")
cli.add_typer(users.app, name="users")
cli.add_typer(reports.app, name="reports")
cli.add_typer(groups.app, name="groups")
cli.add_typer(sync.app, name="sync")
cli.add_typer(openedx.app, name="openedx")
cli.add_typer(tokens.app, name="tokens")
cli.add_typer(trail.app, name="trail")
cli.add_typer(flink.app, name="flink")
cli.command("ingest")(events.ingest_command)
cli.command("counters")(events.counters_command)
cli.command("enrol")(enrolments.enrol_command)
cli.command("unenrol")(enrolments.unenrol_command)
cli.command("serve")(serve.serve)


def _fail(message: str, exit_code: int) -> None:
    sys.stderr.write(f"courseinfra: {message}\n")
    sys.exit(exit_code)


def local_actor() -> Actor:
    """The command line acts as the database owner; the trail names the user and the machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the process's uid (a bare container)
        user = f"uid-{os.getuid()}"
    return Actor(f"cli:{user}", "admin", "cli", socket.gethostname())


def main() -> None:
    acting_as(local_actor())
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
