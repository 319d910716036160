"""The ``groups`` commands: define user groups, refresh, preview and explain them, manage members."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from courseinfra.entrypoints.cli.common import (
    Failure,
    UserArg,
    application,
    emit,
    emit_lines,
    err,
    read_json_file,
    read_text,
    run_every,
)
from courseinfra.entrypoints.schemas.common import MAX_ID
from courseinfra.entrypoints.schemas.groups import (
    ExplainOut,
    GroupChangedOut,
    GroupOut,
    GroupRefreshOut,
    GroupSummaryOut,
    MemberOut,
    MembershipChangeOut,
    MembersImportOut,
    PreviewOut,
    RefreshOut,
    criteria_types_json,
)
from courseinfra.services import groups

app = typer.Typer(
    no_args_is_help=True, help="User groups: define them by criteria, refresh, preview and explain them."
)


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


@app.command("create")
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
        view, result = app.groups.create_group(group, definition)
    emit(GroupChangedOut.of_change(view, result))


@app.command("get")
def groups_get(group: GroupArg) -> None:
    """One group with its include and exclude lists, as JSON."""
    with application() as app:
        emit(GroupOut.of_view(app.groups.get_group(group)))


@app.command("list")
def groups_list(
    scope: Annotated[str | None, typer.Option("--scope", help="Only this scope's groups.")] = None,
) -> None:
    """Every group by id (without its include and exclude lists), as JSON lines."""
    with application() as app:
        found = app.groups.list_groups(scope=scope)
    emit_lines(GroupSummaryOut.of(group) for group in found)


@app.command("update")
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
        view, result = app.groups.update_group(group, expected_version=if_version, **changes)
    emit(GroupChangedOut.of_change(view, result))


@app.command("delete")
def groups_delete(group: GroupArg, if_version: IfVersionOption = None) -> None:
    """Delete a group, its overrides, members and history. A group linked to a team deletes
    the team; one linked to a cohort or a track follows COURSEINFRA_LEGACY_DELETE_POLICY."""
    with application() as app:
        outcome = app.groups.delete_group(group, expected_version=if_version)
    emit({"group_id": group, "deleted": outcome != "archived", "outcome": outcome})


@app.command("members")
def groups_members(
    group: GroupArg,
    after: Annotated[str, typer.Option("--after", help="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Members by user id with when and why they joined, as JSON lines. When the page is full, standard
    error tells the ``--after`` of the next one."""
    with application() as app:
        found = app.groups.members(group, after=after, limit=limit)
    emit_lines(MemberOut.of(member) for member in found)
    if len(found) == limit:
        err.print(f"more may follow: --after {found[-1].user_id}", highlight=False, markup=False)


@app.command("history")
def groups_history(
    group: GroupArg,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's joins and leaves.")] = None,
    after: Annotated[
        int, typer.Option("--after", min=0, max=MAX_ID, help="Only ids above this one (paging).")
    ] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
) -> None:
    """Joins and leaves in the order they happened, with time and reason, as JSON lines."""
    with application() as app:
        found = app.groups.history(group, user_id=user, after_id=after, limit=limit)
    emit_lines(MembershipChangeOut.of(change) for change in found)
    if len(found) == limit:
        err.print(f"more may follow: --after {found[-1].id}", highlight=False)


@app.command("preview")
def groups_preview(
    group: GroupArg,
    criteria: CriteriaOption = None,
    sample: Annotated[int, typer.Option(min=0, max=1000, help="How many ids of each kind to list.")] = 100,
) -> None:
    """Who a refresh would add and remove, with the stored criteria or those of --criteria; writes
    nothing."""
    tree = groups.UNSET if criteria is None else read_json_file(criteria)
    with application() as app:
        result = app.groups.preview(group, criteria=tree, sample=sample)
    emit(PreviewOut.of_preview(result))


@app.command("explain")
def groups_explain(group: GroupArg, user: UserArg) -> None:
    """Why USER is or is not a member: stored membership, the decision now and every criterion's
    outcome, with the value read of USER beside the value compared."""
    with application() as app:
        emit(ExplainOut(**app.groups.explain(group, user)))


@app.command("refresh")
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
            refreshed, result = app.groups.refresh_group(group)
            emit(GroupRefreshOut.of(result, group_id=refreshed.group_id))
            return
        results = app.groups.refresh_all()
    emit(RefreshOut.by_group(results))


def _refresh_on_schedule(every: float) -> None:
    """Refresh all groups every ``every`` seconds until SIGINT or SIGTERM (exit code 0). A failed round
    is reported on standard error and the next one is tried."""
    run_every(
        every,
        lambda app: {"groups": RefreshOut.by_group(app.groups.refresh_all(trigger=groups.SCHEDULE))},
        "refresh",
    )


@app.command("import-members")
def groups_import_members(
    group: GroupArg,
    path: Annotated[str, typer.Argument(metavar="FILE", help="A CSV file, or - for stdin.")],
    if_version: IfVersionOption = None,
) -> None:
    """Add the users of a CSV file (a user_id column; an optional action column, include or exclude) to
    the group's overrides and refresh it, all or nothing: with any bad row, every one is printed
    (``line N: reason``, on standard error), nothing changes and the exit code is 1."""
    text = read_text(path)
    with application() as app:
        try:
            view, result = app.groups.import_members(group, text, expected_version=if_version)
        except groups.InvalidMembersFile as error:
            for line, reason in error.rows:
                err.print(f"line {line}: {reason}", highlight=False, soft_wrap=True, markup=False)
            raise Failure(f"{len(error.rows)} bad row(s) in {path}: nothing was imported") from None
    emit(MembersImportOut.of(view, result))


@app.command("criteria-types")
def groups_criteria_types() -> None:
    """Every registered criterion type with its operators, scopes, facts and config JSON schema."""
    with application() as app:
        emit(criteria_types_json(app.registry))


@app.command("add-members")
def groups_add_members(
    group: GroupArg, users_: Annotated[list[str], typer.Argument(metavar="USER...")]
) -> None:
    """Add users to a group linked to a legacy group: to the legacy group first (a cohort moves them out
    of their previous cohort, and out of the group linked to it)."""
    with application() as app:
        result = app.groups.change_legacy_members(group, add=users_)
    emit(GroupRefreshOut.of(result, group_id=group))


@app.command("remove-members")
def groups_remove_members(
    group: GroupArg, users_: Annotated[list[str], typer.Argument(metavar="USER...")]
) -> None:
    """Remove users from a group linked to a cohort or a team: from the legacy group first."""
    with application() as app:
        result = app.groups.change_legacy_members(group, remove=users_)
    emit(GroupRefreshOut.of(result, group_id=group))
