"""The ``users`` commands: import, read and list users, record logins, set profiles."""

from __future__ import annotations

from typing import Annotated

import typer

from courseinfra.domain.users import InvalidTimestamp, RecordFormat, guess_format, parse_timestamp
from courseinfra.entrypoints.cli.common import Failure, application, emit, emit_lines, err, read_text
from courseinfra.entrypoints.schemas.users import ImportOut, LoginOut, UserOut
from courseinfra.services import users

app = typer.Typer(no_args_is_help=True, help="The user directory: import, read, logins, profiles.")


UserIdArg = Annotated[str, typer.Argument(metavar="ID", help="The user id.")]


@app.command("import")
def users_import(
    path: Annotated[
        str, typer.Argument(metavar="FILE", help="A CSV, JSON or JSON lines file, or - for stdin.")
    ],
    fmt: Annotated[
        RecordFormat | None,
        typer.Option("--format", help="The file's format; by default, from its extension."),
    ] = None,
    replace_records: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace each stored user whole: a field the file leaves out is cleared."
        ),
    ] = False,
) -> None:
    """Insert or update the users of FILE, all or nothing: if any row is bad, every bad row is printed
    (``line N: reason``, on standard error), nothing is imported and the exit code is 1. A row changes
    only the fields it gives (a column present and not empty) and sets the profile fields it gives;
    --replace makes each row the whole user. Prints the counts as JSON."""
    fmt = fmt or guess_format(path)
    if fmt is None:
        raise Failure(f"cannot tell the format of {path}: give --format csv, json or jsonl", exit_code=2)
    text = read_text(path)
    with application() as app:
        report = users.import_users(text, fmt, app.uow_factory, replace_records=replace_records)
    if not report.ok:
        for bad in report.errors:
            err.print(str(bad), highlight=False, soft_wrap=True, markup=False)
        raise Failure(f"{len(report.errors)} bad row(s) in {path}: nothing was imported")
    emit(ImportOut.of(report))


@app.command("get")
def users_get(user: UserIdArg) -> None:
    """One user as JSON."""
    with application() as app:
        emit(UserOut.of(users.get_user(user, app.uow_factory)))


@app.command("list")
def users_list(
    organisation: Annotated[
        str | None, typer.Option("--organisation", help="Only this organisation's users.")
    ] = None,
    after: Annotated[str, typer.Option("--after", help="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Users in user id order, as JSON lines."""
    with application() as app:
        found = users.list_users(app.uow_factory, organisation=organisation, after=after, limit=limit)
    emit_lines(UserOut.of(u) for u in found)


@app.command("login")
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
    emit(LoginOut.of(found, recorded=moved))


@app.command("set-profile")
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
    emit(UserOut.of(updated))
