"""The ``tokens`` commands: the API's bearer tokens. The command line itself needs none: it acts
locally, with the database owner's rights."""

from __future__ import annotations

from typing import Annotated

import typer

from courseinfra.domain.access import Role
from courseinfra.entrypoints.cli.common import application, emit, emit_lines
from courseinfra.entrypoints.schemas.tokens import TokenCreatedOut, TokenOut
from courseinfra.services import access

app = typer.Typer(no_args_is_help=True, help="API tokens: create, list and revoke them.")


@app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="Who or what holds it: a service, a person.")],
    role: Annotated[Role, typer.Option("--role", help="What it may do.")],
    pii: Annotated[bool, typer.Option("--pii", help="May see personal data (email, name, profile).")] = False,
    expires: Annotated[
        int | None, typer.Option("--expires", min=1, max=3650, metavar="DAYS", help="Days until it expires.")
    ] = None,
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            metavar="course:C|organisation:O",
            help="The course, or the organisation's courses, a course_staff token reaches (required for it).",
        ),
    ] = None,
) -> None:
    """Create a token and print it with its secret (JSON): the secret is shown this once."""
    with application() as app:
        token, secret = access.create_token(
            name, role, app.uow_factory(), pii=pii, expires_in_days=expires, scope=scope
        )
    emit(TokenCreatedOut.of(token, secret=secret))


@app.command("list")
def tokens_list() -> None:
    """Every token, revoked and expired ones too, without secrets (JSON lines)."""
    with application() as app:
        found = access.list_tokens(app.uow_factory)
    emit_lines(TokenOut.of(token) for token in found)


@app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a token: the next request with it is refused."""
    with application() as app:
        access.revoke_token(token_id, app.uow_factory())
