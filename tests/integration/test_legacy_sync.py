"""User Group -> Legacy Group synchronisation (ADR 0012), on both legacy backends: the local tables on the
test database, and the Open edX client against a fake Open edX over real HTTP; each on every database
backend. Linked groups of the three kinds (cohort, team, track): creation and linking, pulls (GET,
refresh, status), changes (PUT/PATCH, members), deletion under each policy, the cohort and track moves,
a failure injected at each legacy step of each operation (both sides as before, or what was not undone
reported), a failed local commit, the API and the ``sync status`` command."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.errors import DomainError
from courseinfra.domain.groups import VersionConflict
from courseinfra.domain.legacy import (
    LegacyError,
    LegacyLink,
    link_of,
)
from courseinfra.entrypoints.schemas.sync import SyncStatusOut
from courseinfra.services import enrolments
from courseinfra.services.groups import (
    DeletePolicy,
    DeleteRestricted,
    GroupDefinition,
    GroupNotFound,
    InvalidMembersFile,
    SyncFailed,
    UnknownUsers,
)
from courseinfra.services.sync import sync_status
from courseinfra.settings import Settings
from tests.support.builders import directory_users
from tests.support.cli import Cli
from tests.support.http import ANY_VERSION, api_client, error_code, ok
from tests.support.legacy_world import (
    AT,
    KINDS,
    MODES,
    World,
    create,
    criteria,
    history,
    legacy_members,
    legacy_name,
    linked_id,
    members,
    teamsets,
)

# --- helpers -------------------------------------------------------------------------------------------


def stored(world: World, group_id: str) -> tuple[str, int, bool, bool, int, frozenset[str], int]:
    """What must not change when an operation fails: name, version, enabled, frozen, member count,
    members, history length."""
    with world.app.uow_factory() as uow:
        group = uow.groups.get(group_id)
        assert group is not None
        found = frozenset(m.user_id for m in uow.memberships.members(group_id, limit=1000))
        changes = len(uow.memberships.history(group_id, limit=1000))
    return (group.name, group.version, group.enabled, group.frozen, group.member_count, found, changes)


def legacy_state(world: World, kind: str, legacy_id: str) -> tuple[str | None, set[str], dict[str, str]]:
    """The legacy group's name and members, and every user's track (a track change moves users)."""
    tracks = {
        u: mode for mode in ("audit", "verified") for u in world.legacy.track_members(world.course, mode)
    }
    return legacy_name(world, kind, legacy_id), legacy_members(world, kind, legacy_id), tracks


def status(world: World) -> dict[str, Any]:
    """The sync status as the API and the CLI show it."""
    return SyncStatusOut.of(sync_status(world.app.uow_factory)).model_dump(mode="json")


def sync_failed(call: Callable[[], object]) -> SyncFailed:
    with pytest.raises(SyncFailed) as caught:
        call()
    error = caught.value
    assert error.code == "legacy-sync-failed"
    return error


def only_failure(world: World) -> dict[str, Any]:
    failures: list[dict[str, Any]] = status(world)["failures"]
    assert len(failures) == 1, failures
    return failures[0]


def assert_failure_logged(world: World, group_id: str, operation: str, error: SyncFailed) -> dict[str, Any]:
    assert error.legacy_code == "legacy-unavailable"
    failure = only_failure(world)
    assert (failure["group_id"], failure["operation"], failure["code"]) == (
        group_id,
        operation,
        "legacy-unavailable",
    )
    assert failure["message"], "the legacy error is kept"
    return failure


def assert_clean_failure(world: World, group_id: str, operation: str, error: SyncFailed) -> None:
    failure = assert_failure_logged(world, group_id, operation, error)
    assert failure["not_undone"] == []
    assert "nothing was changed" in str(error)


# --- POST: create or link ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_post_creates_the_legacy_group_pushes_the_include_list_and_mirrors_it(
    world: World, kind: str
) -> None:
    include = ("u1", "u2") if kind != "track" else ("u1",)
    view, result = world.sync.create_group(
        "g", GroupDefinition("Blue", "instance", criteria=criteria(world, kind), include=include)
    )
    legacy_id = linked_id(world, "g")
    config = view.group.criteria.model.model_dump()  # type: ignore[union-attr]
    id_key = {"cohort": "cohort_id", "team": "team_id", "track": "mode"}[kind]
    assert config[id_key] == legacy_id, "the legacy id lands in the stored criteria config"
    expected = set(include) if kind != "track" else {"u1", "u4", "u5"}
    assert legacy_members(world, kind, legacy_id) == expected
    assert members(world, "g") == expected
    assert (result.joined, result.left, result.member_count) == (len(expected), 0, len(expected))
    assert (view.include, view.exclude) == (frozenset(), frozenset()), (
        "the include list went to the legacy group"
    )
    if kind != "track":
        assert legacy_name(world, kind, legacy_id) == "Blue"
    else:
        assert world.legacy.track_members(world.course, "audit") == {"u2", "u3", "u6"}


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_post_with_an_existing_id_links_it(world: World, kind: str) -> None:
    if kind == "cohort":
        legacy_id = world.legacy.create_cohort(world.course, "Existing").cohort_id
        world.legacy.add_to_cohort(world.course, legacy_id, ["u1", "u2"])
    else:
        legacy_id = world.legacy.create_team(world.course, "projects", "Existing").team_id
        world.legacy.add_to_team(legacy_id, ["u1", "u2"])
    assert create(world, "g", kind, ("u3",), legacy_id=legacy_id, name="Linked") == legacy_id
    assert legacy_members(world, kind, legacy_id) == {"u1", "u2", "u3"}
    assert members(world, "g") == {"u1", "u2", "u3"}
    assert legacy_name(world, kind, legacy_id) == "Existing", "linking does not rename"
    if kind == "cohort":
        assert world.cohort_names() == ["Existing"], "no cohort was created"
    else:
        assert world.team_count() == 1, "no team was created"


def test_post_links_an_offered_track_and_refuses_another(world: World) -> None:
    create(world, "verified", "track")
    assert members(world, "verified") == {"u4", "u5"}
    error = sync_failed(lambda: create(world, "gold", "track", legacy_id="gold"))
    assert error.legacy_code == "unknown-track"
    with pytest.raises(GroupNotFound):
        world.sync.get_group("gold")


def test_post_links_only_to_an_existing_legacy_group(world: World) -> None:
    missing = "999" if world.remote else "no-such-cohort"
    error = sync_failed(lambda: create(world, "g", "cohort", legacy_id=missing))
    assert error.legacy_code == "cohort-not-found"
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")


def test_a_linked_group_counts_only_directory_users(world: World) -> None:
    legacy_id = world.legacy.create_cohort(world.course, "Mixed").cohort_id
    if world.fake is not None:
        world.fake.seed(
            world.course,
            enrolled={**MODES, "stranger": "audit"},
            tracks=["audit", "verified"],
            teamsets=teamsets(world.course),
        )
    else:
        enrolments.enrol("stranger", "B1", world.app.uow_factory(), at=AT)
    world.legacy.add_to_cohort(world.course, legacy_id, ["u1", "stranger"])
    create(world, "g", "cohort", legacy_id=legacy_id)
    assert members(world, "g") == {"u1"}
    assert world.sync.get_group("g").group.member_count == 1


@pytest.mark.parametrize("kind", KINDS)
def test_users_unknown_to_the_directory_are_refused_before_any_legacy_step(world: World, kind: str) -> None:
    """Issue 14: a linked group took include ids the directory does not have, added them to the legacy
    group, and a pull (directory users only) never counted them. Refused now, as a members import does,
    before the legacy side is touched; a caller's mistake, so not logged."""
    cohorts, teams = world.cohort_names(), world.team_count()
    with pytest.raises(UnknownUsers) as refused:
        create(world, "g", kind, ("u3", "ghost"))
    assert (refused.value.code, refused.value.unknown) == ("invalid-members-file", [("include", "ghost")])
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")
    assert (world.cohort_names(), world.team_count()) == (cohorts, teams), "no legacy group created"

    legacy_id, before = setup_group(world, kind)
    kept, legacy = stored(world, "g"), legacy_state(world, kind, legacy_id)
    with pytest.raises(UnknownUsers):
        world.sync.change_legacy_members("g", add=["u3", "ghost"])
    with pytest.raises(UnknownUsers):
        world.sync.update_group("g", expected_version=None, name="Renamed", include=[*before, "u3", "ghost"])
    assert (stored(world, "g"), legacy_state(world, kind, legacy_id)) == (kept, legacy)
    assert status(world)["failures"] == []


def test_status_does_not_count_legacy_members_outside_the_directory(world: World) -> None:
    legacy_id = world.legacy.create_cohort(world.course, "Mixed").cohort_id
    if world.fake is not None:
        world.fake.seed(
            world.course,
            enrolled={**MODES, "stranger": "audit"},
            tracks=["audit", "verified"],
            teamsets=teamsets(world.course),
        )
    else:
        enrolments.enrol("stranger", "B1", world.app.uow_factory(), at=AT)
    world.legacy.add_to_cohort(world.course, legacy_id, ["u1", "stranger"])
    create(world, "g", "cohort", legacy_id=legacy_id)
    world.sync.refresh_group("g")
    assert status(world)["differing"] == []
    # A legacy edit makes a difference: the stranger is counted beside it, never listed in it.
    world.legacy.add_to_cohort(world.course, legacy_id, ["u2"])
    [difference] = status(world)["differing"]
    assert (difference["only_in_legacy_group"], difference["only_in_user_group"]) == (["u2"], [])
    assert (difference["differences"], difference["legacy_members_not_in_directory"]) == (1, 1)


def test_a_linked_group_has_no_exclude_list_and_no_other_criteria(world: World) -> None:
    with pytest.raises(LegacyError) as caught:
        world.sync.create_group(
            "g", GroupDefinition("G", "instance", criteria=criteria(world, "cohort"), exclude=("u1",))
        )
    assert caught.value.code == "invalid-group"
    combined = {
        "all": [criteria(world, "cohort"), {"type": "course_enrolment", "operator": "is", "config": {}}]
    }
    with pytest.raises(DomainError) as refused:
        world.sync.create_group("h", GroupDefinition("H", "instance", criteria=combined))
    assert getattr(refused.value, "code", None) in ("invalid-criteria", "invalid-group")
    assert world.cohort_names() == []


# --- reads: GET, preview, explain; import -----------------------------------------------------------------------------------------


def change_behind(world: World, kind: str, legacy_id: str) -> None:
    """Behind the user group's back: u3 joins the legacy group, u1 leaves it."""
    if kind == "cohort":
        world.legacy.add_to_cohort(world.course, legacy_id, ["u3"])
        world.legacy.remove_from_cohort(world.course, legacy_id, ["u1"])
    elif kind == "team":
        world.legacy.add_to_team(legacy_id, ["u3"])
        world.legacy.remove_from_team(legacy_id, ["u1"])
    else:
        world.legacy.set_track(world.course, ["u3"], "verified")
        world.legacy.set_track(world.course, ["u4"], "audit")


def setup_group(world: World, kind: str, group_id: str = "g") -> tuple[str, set[str]]:
    """A linked group of ``kind``; its legacy id and members (u1 and u2; the verified track: u4, u5)."""
    legacy_id = create(world, group_id, kind, ("u1", "u2") if kind != "track" else ())
    expected = {"u1", "u2"} if kind != "track" else {"u4", "u5"}
    assert members(world, group_id) == expected
    return legacy_id, expected


def moved(kind: str) -> tuple[str, str]:
    """Who ``change_behind`` takes in and out."""
    return ("u3", "u1") if kind != "track" else ("u3", "u4")


@pytest.mark.parametrize("kind", KINDS)
def test_get_reads_the_stored_membership_and_writes_nothing(world: World, kind: str) -> None:
    legacy_id, before = setup_group(world, kind)
    kept = stored(world, "g")
    change_behind(world, kind, legacy_id)
    view = world.sync.get_group("g")
    assert stored(world, "g") == kept, "a read never writes: no pull, no history row"
    assert (view.group.member_count, view.group.version) == (len(before), kept[1])
    world.fail(READ_STEP[kind])
    assert world.sync.get_group("g").group.group_id == "g", "a read does not call the legacy system"


@pytest.mark.parametrize("kind", KINDS)
def test_preview_shows_what_a_refresh_would_pull_and_writes_nothing(world: World, kind: str) -> None:
    legacy_id, before = setup_group(world, kind)
    kept = stored(world, "g")
    change_behind(world, kind, legacy_id)
    joiner, leaver = moved(kind)
    preview = world.sync.preview("g")
    assert (preview.joined, preview.left, preview.joined_ids, preview.left_ids) == (
        1,
        1,
        (joiner,),
        (leaver,),
    )
    assert stored(world, "g") == kept
    same = world.sync.preview("g", criteria=link_of_group(world, "g").criteria())
    assert (same.joined, same.left) == (1, 1), "the group's own criteria are the stored ones"
    with pytest.raises(LegacyError) as refused:
        world.sync.preview("g", criteria={"type": "staff_status", "operator": "is_staff", "config": {}})
    assert refused.value.code == "invalid-group"
    _, result = world.sync.refresh_group("g")
    assert (result.joined, result.left) == (1, 1)
    assert members(world, "g") == (before - {leaver}) | {joiner}
    nothing = world.sync.preview("g")
    assert (nothing.joined, nothing.left) == (0, 0)


def test_preview_of_a_linked_group_failing_at_the_legacy_read_logs_nothing(world: World) -> None:
    setup_group(world, "cohort")
    world.fail("cohort_members")
    error = sync_failed(lambda: world.sync.preview("g"))
    assert error.legacy_code == "legacy-unavailable"
    assert status(world)["failures"] == [], "a read is no failed operation"


@pytest.mark.parametrize("kind", KINDS)
def test_explain_says_whether_the_legacy_group_has_the_user(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    change_behind(world, kind, legacy_id)
    joiner, leaver = moved(kind)
    joining = world.sync.explain("g", joiner)
    assert (joining["member"], joining["would_be_member"], joining["reason"]) == (
        False,
        True,
        "legacy-member",
    )
    assert joining["criteria"]["holds"] is True
    assert joining["criteria"]["type"] == f"legacy_{kind}"
    leaving = world.sync.explain("g", leaver)
    assert (leaving["member"], leaving["would_be_member"], leaving["reason"]) == (
        True,
        False,
        "not-in-legacy-group",
    )
    unknown = world.sync.explain("g", "nobody")
    assert (unknown["would_be_member"], unknown["reason"]) == (False, "unknown-user")


@pytest.mark.parametrize("kind", ["cohort"])
def test_refresh_history_carries_a_legacy_reason(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    change_behind(world, kind, legacy_id)
    world.sync.refresh_group("g")
    joiner, leaver = moved(kind)
    reasons = [c.reason for c in history(world, "g", joiner)] + [history(world, "g", leaver)[-1].reason]
    assert all(reason.startswith("legacy-") for reason in reasons), reasons


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_import_adds_and_removes_on_the_legacy_side(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    version = stored(world, "g")[1]
    view, result = world.sync.import_members(
        "g", "user_id,action\nu3,include\nu1,exclude\n", expected_version=version
    )
    assert result is not None
    assert (result.joined, result.left) == (1, 1)
    assert legacy_members(world, kind, legacy_id) == {"u2", "u3"} == members(world, "g")
    assert (view.include, view.exclude) == (frozenset(), frozenset()), "a linked group has no overrides"
    assert [c.reason for c in history(world, "g", "u3")] == ["legacy-import"]


def test_an_import_with_a_bad_row_changes_neither_side(world: World) -> None:
    legacy_id, before = setup_group(world, "cohort")
    kept = stored(world, "g")
    with pytest.raises(InvalidMembersFile) as caught:
        world.sync.import_members("g", "user_id\nu3\nnobody\nu3\n")
    assert caught.value.rows == [(3, "unknown user nobody"), (4, "user u3 is already on line 2")]
    assert legacy_members(world, "cohort", legacy_id) == before
    assert stored(world, "g") == kept
    with pytest.raises(VersionConflict):
        world.sync.import_members("g", "user_id\nu3\n", expected_version=kept[1] + 1)
    assert legacy_members(world, "cohort", legacy_id) == before


def test_an_import_failing_on_the_legacy_side_is_undone_and_logged(world: World) -> None:
    legacy_id, before = setup_group(world, "team")
    kept = stored(world, "g")
    world.fail("remove_from_team")
    error = sync_failed(lambda: world.sync.import_members("g", "user_id,action\nu3,include\nu1,exclude\n"))
    assert_clean_failure(world, "g", "import", error)
    assert legacy_members(world, "team", legacy_id) == before
    assert stored(world, "g") == kept


def link_of_group(world: World, group_id: str) -> LegacyLink:
    link = link_of(world.sync.get_group(group_id).group.criteria)
    assert link is not None
    return link


# --- PUT / PATCH ---------------------------------------------------------------------------------------


def put(world: World, group_id: str, *, before: Callable[[], None] = lambda: None, **changes: Any) -> Any:
    """A PUT as the API sends it: every field, the stored ones unless changed (``before``: run just
    before the update, after the group was read)."""
    view = world.sync.get_group(group_id)
    group = view.group
    link = link_of(group.criteria)
    assert link is not None
    fields: dict[str, Any] = {
        "name": group.name,
        "scope": str(group.scope),
        "description": group.description,
        "enabled": group.enabled,
        "frozen": group.frozen,
        "criteria": link.criteria(),
        "include": sorted(members(world, group_id)),
        "exclude": [],
        **changes,
    }
    before()
    return world.sync.update_group(group_id, expected_version=group.version, **fields)


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_rename_goes_to_the_legacy_group(world: World, kind: str) -> None:
    legacy_id, before = setup_group(world, kind)
    view, _ = world.sync.update_group("g", expected_version=1, name="Renamed")
    assert (view.group.name, view.group.version) == ("Renamed", 2)
    assert legacy_name(world, kind, legacy_id) == "Renamed"
    assert legacy_members(world, kind, legacy_id) == before == members(world, "g")


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_include_changes_add_and_remove_on_the_legacy_side(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    view, result = put(world, "g", name="Green", include=["u2", "u3", "u4"])
    assert legacy_members(world, kind, legacy_id) == {"u2", "u3", "u4"}
    assert members(world, "g") == {"u2", "u3", "u4"}
    assert result is not None
    assert (result.joined, result.left, result.member_count) == (2, 1, 3)
    assert (view.group.name, legacy_name(world, kind, legacy_id)) == ("Green", "Green")
    assert view.include == frozenset(), "the include list is the legacy group's, not an override"
    world.sync.update_group("g", expected_version=view.group.version, include=["u3"])
    assert legacy_members(world, kind, legacy_id) == {"u3"} == members(world, "g")


def test_a_track_include_change_changes_the_enrolment_mode(world: World) -> None:
    create(world, "verified", "track")
    create(world, "audit", "track", legacy_id="audit")
    assert members(world, "audit") == {"u1", "u2", "u3", "u6"}
    put(world, "verified", include=["u1", "u4", "u5"])
    assert world.legacy.track_members(world.course, "verified") == {"u1", "u4", "u5"}
    assert members(world, "verified") == {"u1", "u4", "u5"}
    assert members(world, "audit") == {"u2", "u3", "u6"}, "u1 left the group linked to its previous track"
    # A learner cannot leave a track but to another one.
    error = sync_failed(lambda: put(world, "verified", include=["u1", "u4"]))
    assert error.legacy_code == "legacy-not-deletable"
    assert world.legacy.track_members(world.course, "verified") == {"u1", "u4", "u5"}


@pytest.mark.parametrize("kind", KINDS)
def test_criteria_and_scope_of_a_linked_group_cannot_change(world: World, kind: str) -> None:
    legacy_id, before = setup_group(world, kind)
    snapshot = stored(world, "g")
    other = criteria(world, "cohort" if kind != "cohort" else "team")
    for changes in (
        {"criteria": other},
        {"criteria": None},
        {"criteria": criteria(world, "track", "audit")},
        {"scope": "course:democourse"},
    ):
        with pytest.raises(LegacyError) as caught:
            world.sync.update_group("g", expected_version=None, **changes)
        assert caught.value.code == "invalid-group", changes
        assert "cannot change" in str(caught.value)
    assert stored(world, "g") == snapshot
    assert legacy_members(world, kind, legacy_id) == before


@pytest.mark.parametrize("kind", KINDS)
def test_a_put_repeating_criteria_and_scope_is_accepted(world: World, kind: str) -> None:
    legacy_id, before = setup_group(world, kind)
    view, _ = put(world, "g", description="described")
    assert (view.group.description, view.group.version) == ("described", 2)
    assert link_of(view.group.criteria) is not None
    assert linked_id(world, "g") == legacy_id
    assert members(world, "g") == before == legacy_members(world, kind, legacy_id)


# --- DELETE --------------------------------------------------------------------------------------------


def test_deleting_a_team_group_deletes_the_team_then_the_group(world: World) -> None:
    legacy_id, _ = setup_group(world, "team")
    assert world.sync.delete_group("g", expected_version=1) == "deleted"
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")
    with pytest.raises(LegacyError) as caught:
        world.legacy.get_team(legacy_id)
    assert caught.value.code == "team-not-found"
    assert world.team_count() == 0
    assert history(world, "g") == []


@pytest.mark.parametrize("kind", ["cohort", "track"])
def test_restrict_refuses_deleting_a_cohort_or_track_group(world: World, kind: str) -> None:
    legacy_id, before = setup_group(world, kind)
    snapshot = stored(world, "g")
    with pytest.raises(DeleteRestricted) as caught:
        world.sync.delete_group("g", expected_version=1)
    assert caught.value.code == "delete-restricted"
    assert stored(world, "g") == snapshot
    assert legacy_members(world, kind, legacy_id) == before


@pytest.mark.parametrize("kind", ["cohort", "track"])
def test_detach_deletes_only_the_user_group(world: World, kind: str) -> None:
    legacy_id, before = setup_group(world, kind)
    assert world.with_policy(DeletePolicy.DETACH).delete_group("g", expected_version=1) == "detached"
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")
    assert legacy_members(world, kind, legacy_id) == before, "the legacy group stays with its members"
    if kind == "cohort":
        assert world.legacy.get_cohort(world.course, legacy_id).name == "G"
    assert status(world)["links"] == 0


@pytest.mark.parametrize("kind", ["cohort", "track"])
def test_archive_keeps_both_and_disables_and_freezes_the_group(world: World, kind: str) -> None:
    legacy_id, before = setup_group(world, kind)
    assert world.with_policy(DeletePolicy.ARCHIVE).delete_group("g", expected_version=1) == "archived"
    view = world.sync.get_group("g")
    assert (view.group.enabled, view.group.frozen, view.group.version) == (False, True, 2)
    assert members(world, "g") == before == legacy_members(world, kind, legacy_id)
    # Frozen: the legacy side changing no longer changes the group.
    change_behind(world, kind, legacy_id)
    assert members(world, "g") == before
    assert "g" not in world.sync.refresh_all()


def test_deleting_under_a_stale_version_changes_nothing(world: World) -> None:
    legacy_id, before = setup_group(world, "team")
    world.sync.update_group("g", expected_version=1, description="v2")
    with pytest.raises(DomainError) as caught:
        world.sync.delete_group("g", expected_version=1)
    assert getattr(caught.value, "code", None) == "version-conflict"
    assert legacy_members(world, "team", legacy_id) == before == members(world, "g")


# --- side effects of the legacy rules -----------------------------------------------------------------


def test_adding_to_cohort_b_moves_the_learner_out_of_the_group_linked_to_cohort_a(world: World) -> None:
    cohort_a = create(world, "a", "cohort", ("u1", "u2"))
    cohort_b = create(world, "b", "cohort", ("u3",))
    result = world.sync.change_legacy_members("b", add=["u1"])
    assert (result.joined, result.member_count) == (1, 2)
    assert world.legacy.cohort_members(world.course, cohort_a) == {"u2"}
    assert world.legacy.cohort_members(world.course, cohort_b) == {"u1", "u3"}
    assert members(world, "a") == {"u2"}
    assert members(world, "b") == {"u1", "u3"}
    assert [c.change for c in history(world, "a", "u1")] == ["joined", "left"]
    assert status(world)["differing"] == []


def test_the_leave_of_a_cohort_move_has_the_reason_legacy_move(world: World) -> None:
    create(world, "a", "cohort", ("u1", "u2"))
    create(world, "b", "cohort", ("u3",))
    world.sync.change_legacy_members("b", add=["u1"])
    last = history(world, "a", "u1")[-1]
    assert (last.change, last.reason) == ("left", "legacy-move")


def test_a_track_change_moves_the_learner_out_of_the_group_of_the_previous_track(world: World) -> None:
    create(world, "audit", "track", legacy_id="audit")
    create(world, "verified", "track")
    world.sync.change_legacy_members("verified", add=["u1", "u2"])
    assert members(world, "verified") == {"u1", "u2", "u4", "u5"}
    assert members(world, "audit") == {"u3", "u6"}
    assert [c.change for c in history(world, "audit", "u2")] == ["joined", "left"]
    assert status(world)["differing"] == []


# --- refresh and status --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_refresh_group_pulls_and_reports_what_changed(world: World, kind: str) -> None:
    legacy_id, before = setup_group(world, kind)
    change_behind(world, kind, legacy_id)
    joiner, leaver = moved(kind)
    differing = status(world)["differing"]
    assert [
        (d["group_id"], d["only_in_user_group"], d["only_in_legacy_group"], d["differences"])
        for d in differing
    ] == [("g", [leaver], [joiner], 2)]
    assert differing[0]["kind"] == kind
    group, result = world.sync.refresh_group("g")
    assert (result.joined, result.left, result.member_count) == (1, 1, len(before))
    assert group.member_count == len(before)
    assert members(world, "g") == (before - {leaver}) | {joiner}
    after = status(world)
    assert (after["links"], after["differing"], after["failures"]) == (1, [], [])


def test_refresh_all_pulls_every_linked_group(world: World) -> None:
    cohort, _ = setup_group(world, "cohort", "c")
    team = create(world, "t", "team", ("u3", "u4"))
    create(world, "v", "track")
    world.sync.create_group("plain", GroupDefinition("Plain", "instance", include=("u6",)))
    world.legacy.add_to_cohort(world.course, cohort, ["u5"])
    world.legacy.remove_from_team(team, ["u4"])
    world.legacy.set_track(world.course, ["u6"], "verified")
    assert {d["group_id"] for d in status(world)["differing"]} == {"c", "t", "v"}
    results = world.sync.refresh_all()
    assert set(results) == {"c", "t", "v", "plain"}
    assert (results["c"].joined, results["c"].left) == (1, 0)
    assert (results["t"].joined, results["t"].left) == (0, 1)
    assert (results["v"].joined, results["v"].left) == (1, 0)
    assert (results["plain"].joined, results["plain"].left) == (0, 0)
    assert members(world, "c") == {"u1", "u2", "u5"}
    assert members(world, "t") == {"u3"}
    assert members(world, "v") == {"u4", "u5", "u6"}
    assert status(world)["differing"] == []
    assert status(world)["links"] == 3


def test_status_lists_a_legacy_group_that_is_gone(world: World) -> None:
    team = create(world, "t", "team", ("u1",))
    world.legacy.delete_team(team)
    [differing] = status(world)["differing"]
    assert differing["group_id"] == "t"
    assert "team-not-found" in differing["error"]


# --- failures injected at each step ---------------------------------------------------------------------

ADD_STEP = {"cohort": "add_to_cohort", "team": "add_to_team", "track": "set_track"}
REMOVE_STEP = {"cohort": "remove_from_cohort", "team": "remove_from_team"}
RENAME_STEP = {"cohort": "update_cohort", "team": "update_team"}
READ_STEP = {"cohort": "cohort_members", "team": "team_members", "track": "track_members"}


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_create_failing_at_the_legacy_group_creation_changes_nothing(world: World, kind: str) -> None:
    world.fail("create_cohort" if kind == "cohort" else "create_team")
    error = sync_failed(lambda: create(world, "g", kind, ("u1", "u2")))
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")
    assert world.cohort_names() == []
    assert world.team_count() == 0
    assert_clean_failure(world, "g", "create", error)


def test_create_of_a_track_group_failing_at_the_track_change_changes_nothing(world: World) -> None:
    world.fail("set_track")
    error = sync_failed(lambda: create(world, "g", "track", ("u1",)))
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")
    assert world.legacy.track_members(world.course, "verified") == {"u4", "u5"}
    assert_clean_failure(world, "g", "create", error)


def test_create_failing_after_the_cohort_was_created_leaves_it_unlinked_and_says_so(world: World) -> None:
    world.fail("add_to_new_cohort")
    error = sync_failed(lambda: create(world, "g", "cohort", ("u1", "u2"), name="Orphan"))
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")
    if not world.remote:
        # The local tables share the group's transaction: the cohort is rolled back with it.
        assert world.legacy.list_cohorts(world.course) == []
        assert assert_failure_logged(world, "g", "create", error)["not_undone"] == []
        return
    [cohort] = world.legacy.list_cohorts(world.course)
    assert cohort.name == "Orphan", "a cohort cannot be deleted: it stays"
    assert world.legacy.cohort_members(world.course, cohort.cohort_id) == set()
    failure = assert_failure_logged(world, "g", "create", error)
    [not_undone] = failure["not_undone"]
    assert f"cohort {cohort.cohort_id}" in not_undone
    assert "stays, unlinked" in not_undone
    assert "not undone" in str(error)
    assert "stays, unlinked" in str(error)


def test_create_failing_at_the_members_add_deletes_the_team_created(world: World) -> None:
    # On the fake the failure comes midway (the first user added, the second refused): that user is
    # taken out again before the team is deleted.
    world.fail("add_to_new_team", after=1 if world.remote else 0)
    error = sync_failed(lambda: create(world, "g", "team", ("u1", "u2")))
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")
    assert world.team_count() == 0
    assert_clean_failure(world, "g", "create", error)


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_update_failing_at_the_rename_changes_nothing(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    before, legacy_before = stored(world, "g"), legacy_state(world, kind, legacy_id)
    world.fail(RENAME_STEP[kind])
    error = sync_failed(lambda: put(world, "g", name="Renamed", include=["u1", "u2", "u3"]))
    assert stored(world, "g") == before
    assert legacy_state(world, kind, legacy_id) == legacy_before
    assert_clean_failure(world, "g", "update", error)


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_update_failing_at_the_members_add_reverts_the_rename(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    before, legacy_before = stored(world, "g"), legacy_state(world, kind, legacy_id)
    world.fail(ADD_STEP[kind])
    error = sync_failed(lambda: put(world, "g", name="Renamed", include=["u1", "u2", "u3"]))
    assert stored(world, "g") == before
    assert legacy_state(world, kind, legacy_id) == legacy_before
    assert legacy_name(world, kind, legacy_id) == "G"
    assert_clean_failure(world, "g", "update", error)


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_update_failing_at_the_members_remove_reverts_the_add_and_the_rename(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    before, legacy_before = stored(world, "g"), legacy_state(world, kind, legacy_id)
    world.fail(REMOVE_STEP[kind])
    error = sync_failed(lambda: put(world, "g", name="Renamed", include=["u2", "u3"]))
    assert stored(world, "g") == before
    assert legacy_state(world, kind, legacy_id) == legacy_before, "u3 taken out again, the name reverted"
    assert_clean_failure(world, "g", "update", error)


def test_update_of_a_track_group_failing_at_the_track_change_changes_nothing(world: World) -> None:
    create(world, "audit", "track", legacy_id="audit")
    setup_group(world, "track")
    before, audit_before = stored(world, "g"), stored(world, "audit")
    legacy_before = legacy_state(world, "track", "verified")
    world.fail("set_track")
    error = sync_failed(lambda: put(world, "g", include=["u1", "u4", "u5"]))
    assert (stored(world, "g"), stored(world, "audit")) == (before, audit_before)
    assert legacy_state(world, "track", "verified") == legacy_before
    assert_clean_failure(world, "g", "update", error)


@pytest.mark.parametrize("kind", KINDS)
def test_add_members_failing_changes_nothing(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    other = create(world, "other", "cohort", ("u3",)) if kind == "cohort" else None
    before, legacy_before = stored(world, "g"), legacy_state(world, kind, legacy_id)
    world.fail(ADD_STEP[kind])
    error = sync_failed(lambda: world.sync.change_legacy_members("g", add=["u3", "u6"]))
    assert stored(world, "g") == before
    assert legacy_state(world, kind, legacy_id) == legacy_before
    if other is not None:
        assert world.legacy.cohort_members(world.course, other) == {"u3"} == members(world, "other")
    assert_clean_failure(world, "g", "members", error)


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_remove_members_failing_changes_nothing(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    before, legacy_before = stored(world, "g"), legacy_state(world, kind, legacy_id)
    world.fail(REMOVE_STEP[kind])
    error = sync_failed(lambda: world.sync.change_legacy_members("g", remove=["u1"]))
    assert stored(world, "g") == before
    assert legacy_state(world, kind, legacy_id) == legacy_before
    assert_clean_failure(world, "g", "members", error)


def test_a_team_add_failing_midway_is_undone(world: World) -> None:
    # Remote: the second user's POST fails after the first one's was made. Local: one all-or-nothing
    # call, which fails whole.
    legacy_id, _ = setup_group(world, "team")
    before = stored(world, "g")
    world.fail("add_to_team", after=1 if world.remote else 0)
    error = sync_failed(lambda: world.sync.change_legacy_members("g", add=["u3", "u4"]))
    assert stored(world, "g") == before
    assert world.legacy.team_members(legacy_id) == {"u1", "u2"}, "u3, added before the failure, was taken out"
    assert_clean_failure(world, "g", "members", error)


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_a_remove_failing_midway_is_undone(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    before, legacy_before = stored(world, "g"), legacy_state(world, kind, legacy_id)
    world.fail(REMOVE_STEP[kind], after=1 if world.remote else 0)
    error = sync_failed(lambda: world.sync.change_legacy_members("g", remove=["u1", "u2"]))
    assert stored(world, "g") == before
    assert legacy_state(world, kind, legacy_id) == legacy_before, "u1, removed before the failure, is back"
    assert_clean_failure(world, "g", "members", error)


def test_delete_failing_at_the_team_deletion_changes_nothing(world: World) -> None:
    legacy_id, _ = setup_group(world, "team")
    before, legacy_before = stored(world, "g"), legacy_state(world, "team", legacy_id)
    world.fail("delete_team")
    error = sync_failed(lambda: world.sync.delete_group("g", expected_version=1))
    assert stored(world, "g") == before
    assert legacy_state(world, "team", legacy_id) == legacy_before
    assert_clean_failure(world, "g", "delete", error)


@pytest.mark.parametrize("kind", KINDS)
def test_refresh_failing_at_the_legacy_read_changes_nothing(world: World, kind: str) -> None:
    legacy_id, _ = setup_group(world, kind)
    change_behind(world, kind, legacy_id)
    before, legacy_before = stored(world, "g"), legacy_state(world, kind, legacy_id)
    world.fail(READ_STEP[kind])
    error = sync_failed(lambda: world.sync.refresh_group("g"))
    assert stored(world, "g") == before
    assert legacy_state(world, kind, legacy_id) == legacy_before
    assert_clean_failure(world, "g", "refresh", error)
    # refresh_all goes on past it (the failure is logged), and a GET reports it.
    world.fail(READ_STEP[kind])
    assert "g" not in world.sync.refresh_all()
    assert stored(world, "g") == before
    assert [f["operation"] for f in status(world)["failures"]] == ["refresh", "refresh"]
    world.fail(READ_STEP[kind])
    assert sync_failed(lambda: world.sync.preview("g")).legacy_code == "legacy-unavailable"
    assert stored(world, "g") == before


# --- a failed local commit ------------------------------------------------------------------------------


def fail_next_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    original = SqlUnitOfWork._commit
    left = {"times": 1}

    def failing(self: SqlUnitOfWork) -> None:
        if left["times"] > 0:
            left["times"] -= 1
            raise RuntimeError("injected: the commit failed")
        original(self)

    monkeypatch.setattr(SqlUnitOfWork, "_commit", failing)


def assert_commit_failure_logged(world: World, group_id: str, operation: str) -> dict[str, Any]:
    failure = only_failure(world)
    assert (failure["group_id"], failure["operation"], failure["code"]) == (
        group_id,
        operation,
        "RuntimeError",
    )
    return failure


def test_a_failed_commit_of_a_creation_deletes_the_team_created(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_next_commit(monkeypatch)
    with pytest.raises(RuntimeError):
        create(world, "g", "team", ("u1", "u2"))
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")
    assert world.team_count() == 0
    assert assert_commit_failure_logged(world, "g", "create")["not_undone"] == []


def test_a_failed_commit_of_a_cohort_creation_leaves_the_cohort_unlinked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_next_commit(monkeypatch)
    with pytest.raises(RuntimeError):
        create(world, "g", "cohort", ("u1", "u2"), name="Orphan")
    with pytest.raises(GroupNotFound):
        world.sync.get_group("g")
    if not world.remote:
        assert world.legacy.list_cohorts(world.course) == [], "rolled back with the group"
        assert assert_commit_failure_logged(world, "g", "create")["not_undone"] == []
        return
    [cohort] = world.legacy.list_cohorts(world.course)
    assert world.legacy.cohort_members(world.course, cohort.cohort_id) == set(), (
        "the users added were taken out"
    )
    [not_undone] = assert_commit_failure_logged(world, "g", "create")["not_undone"]
    assert "stays, unlinked" in not_undone


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_a_failed_commit_of_an_update_undoes_the_legacy_steps(
    world: World, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy_id, _ = setup_group(world, kind)
    before, legacy_before = stored(world, "g"), legacy_state(world, kind, legacy_id)
    with pytest.raises(RuntimeError):
        put(world, "g", name="Renamed", include=["u2", "u3"], before=lambda: fail_next_commit(monkeypatch))
    assert stored(world, "g") == before
    assert legacy_state(world, kind, legacy_id) == legacy_before
    assert assert_commit_failure_logged(world, "g", "update")["not_undone"] == []


def test_a_failed_commit_of_a_cohort_move_puts_the_learner_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort_a = create(world, "a", "cohort", ("u1",))
    cohort_b = create(world, "b", "cohort", ("u3",))
    before_a, before_b = stored(world, "a"), stored(world, "b")
    fail_next_commit(monkeypatch)
    with pytest.raises(RuntimeError):
        world.sync.change_legacy_members("b", add=["u1", "u2"])
    assert world.legacy.cohort_members(world.course, cohort_a) == {"u1"}, "u1 moved back to cohort A"
    assert world.legacy.cohort_members(world.course, cohort_b) == {"u3"}
    assert (stored(world, "a"), stored(world, "b")) == (before_a, before_b)
    assert assert_commit_failure_logged(world, "b", "members")["not_undone"] == []


def test_a_failed_commit_of_a_track_change_puts_the_learner_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_group(world, "track")
    fail_next_commit(monkeypatch)
    with pytest.raises(RuntimeError):
        world.sync.change_legacy_members("g", add=["u1"])
    assert world.legacy.track_members(world.course, "verified") == {"u4", "u5"}
    assert "u1" in world.legacy.track_members(world.course, "audit")
    assert members(world, "g") == {"u4", "u5"}
    assert assert_commit_failure_logged(world, "g", "members")["not_undone"] == []


def test_a_failed_commit_after_the_team_deletion_is_reported(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_group(world, "team")
    fail_next_commit(monkeypatch)
    with pytest.raises(RuntimeError):
        world.sync.delete_group("g", expected_version=1)
    failure = only_failure(world)
    if not world.remote:
        # The local team was deleted in the group's transaction: the rollback restored both.
        assert (failure["operation"], failure["not_undone"]) == ("delete", [])
        assert world.team_count() == 1
        assert world.sync.get_group("g").group.group_id == "g"
        return
    assert (failure["operation"], len(failure["not_undone"])) == ("delete", 1)


# --- the API and the CLI --------------------------------------------------------------------------------


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    world.app.groups = world.sync  # the API with this world's delete policy
    with api_client(world.app) as client:
        yield client


def test_api_creates_a_linked_group_and_reports_the_sync_status(world: World, client: TestClient) -> None:
    body = {
        "group_id": "g",
        "name": "Blue",
        "scope": "instance",
        "criteria": criteria(world, "cohort"),
        "include": ["u1", "u2"],
    }
    created = ok(client.post("/v1/groups", json=body), 201)
    cohort_id = created["criteria"]["config"]["cohort_id"]
    assert cohort_id == linked_id(world, "g")
    assert created["refresh"] == {"joined": 2, "left": 0, "member_count": 2}
    assert world.legacy.cohort_members(world.course, cohort_id) == {"u1", "u2"}
    status = ok(client.get("/v1/sync/status"))
    assert (status["links"], status["differing"], status["failures"]) == (1, [], [])
    world.legacy.add_to_cohort(world.course, cohort_id, ["u3"])
    [differing] = ok(client.get("/v1/sync/status"))["differing"]
    assert (differing["group_id"], differing["only_in_legacy_group"]) == ("g", ["u3"])
    assert ok(client.get("/v1/groups/g"))["member_count"] == 2, "a GET does not pull"
    assert ok(client.post("/v1/groups/g/preview"))["joined_ids"] == ["u3"]
    explained = ok(client.get("/v1/groups/g/explain/u3"))
    assert (explained["member"], explained["reason"]) == (False, "legacy-member")
    assert ok(client.post("/v1/groups/g/refresh"))["member_count"] == 3
    assert ok(client.get("/v1/sync/status"))["differing"] == []
    imported = client.post(
        "/v1/groups/g/members/import",
        content="user_id,action\nu4,include\n",
        headers={"content-type": "text/csv"},
    )
    assert ok(imported)["refresh"]["member_count"] == 4
    assert world.legacy.cohort_members(world.course, cohort_id) == {"u1", "u2", "u3", "u4"}


def test_api_changes_legacy_members(world: World, client: TestClient) -> None:
    legacy_id, _ = setup_group(world, "team")
    changed = ok(client.post("/v1/groups/g/legacy-members", json={"add": ["u3"], "remove": ["u1"]}))
    assert changed["group_id"] == "g"
    assert world.legacy.team_members(legacy_id) == {"u2", "u3"} == members(world, "g")


def test_api_a_rule_the_legacy_system_enforces_is_the_callers_error_not_502(
    world: World, client: TestClient
) -> None:
    legacy_id, before = setup_group(world, "team")
    directory_users(world.app, "outsider")  # known here, but not enrolled (nor an Open edX user)
    refused = client.post("/v1/groups/g/legacy-members", json={"add": ["outsider"]})
    assert error_code(refused, 422) == "legacy-sync-failed"
    assert (
        "not-enrolled" in refused.json()["error"]["message"]
        or "user-not-found" in refused.json()["error"]["message"]
    )
    assert world.legacy.team_members(legacy_id) == before == members(world, "g")


def test_api_refuses_users_unknown_to_the_directory_before_the_legacy_side(
    world: World, client: TestClient
) -> None:
    legacy_id, before = setup_group(world, "team")
    refused = client.post("/v1/groups/g/legacy-members", json={"add": ["u3", "ghost"], "remove": ["nobody"]})
    assert error_code(refused, 422) == "invalid-members-file"
    assert [(d["field"], d["user_id"]) for d in refused.json()["error"]["details"]] == [
        ("add", "ghost"),
        ("remove", "nobody"),
    ]
    assert world.legacy.team_members(legacy_id) == before == members(world, "g")
    assert ok(client.get("/v1/sync/status"))["failures"] == []


def test_api_a_cohort_of_a_course_the_platform_does_not_know_is_404(world: World, client: TestClient) -> None:
    """Issue 14: the local tables made a cohort (and the linked group) in any course; Open edX refuses an
    unknown course key, and so do the local tables now (a course is known when its hierarchy is stored)."""
    nowhere = {"type": "legacy_cohort", "operator": "member_of", "config": {"course_id": "nowhere"}}
    body = {"group_id": "g", "name": "Blue", "scope": "instance", "criteria": nowhere, "include": ["u1"]}
    refused = client.post("/v1/groups", json=body)
    assert error_code(refused, 404) == "legacy-sync-failed"
    assert "course-not-found" in refused.json()["error"]["message"]
    assert error_code(client.get("/v1/groups/g"), 404) == "group-not-found"
    assert world.cohort_names() == []
    assert world.legacy.list_cohorts("nowhere") == []
    [failure] = ok(client.get("/v1/sync/status"))["failures"]
    assert (failure["operation"], failure["code"], failure["not_undone"]) == (
        "create",
        "course-not-found",
        [],
    )


def test_api_delete_under_restrict_is_409_and_a_legacy_failure_502(world: World, client: TestClient) -> None:
    legacy_id, before = setup_group(world, "cohort")
    refused = client.delete("/v1/groups/g", headers=ANY_VERSION)
    assert error_code(refused, 409) == "delete-restricted"
    assert legacy_members(world, "cohort", legacy_id) == before == members(world, "g")
    world.fail("create_team")
    body = {
        "group_id": "t",
        "name": "T",
        "scope": "instance",
        "criteria": criteria(world, "team"),
        "include": ["u1"],
    }
    failed = client.post("/v1/groups", json=body)
    assert error_code(failed, 502) == "legacy-sync-failed"
    assert client.get("/v1/groups/t").status_code == 404
    [failure] = ok(client.get("/v1/sync/status"))["failures"]
    assert (failure["group_id"], failure["operation"], failure["code"]) == (
        "t",
        "create",
        "legacy-unavailable",
    )
    world.fail("cohort_members")
    pulled = client.post("/v1/groups/g/refresh")
    assert error_code(pulled, 502) == "legacy-sync-failed"


@pytest.mark.parametrize("world", ["local"], indirect=True)
def test_cli_sync_status_exits_1_when_a_link_differs_and_0_when_clean(
    world: World, settings: Settings
) -> None:
    cli = Cli(settings)
    legacy_id, _ = setup_group(world, "cohort")
    clean = cli("sync", "status")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["differing"] == []
    world.legacy.add_to_cohort(world.course, legacy_id, ["u4"])
    differing = cli("sync", "status")
    assert differing.returncode == 1, differing.stderr
    [link] = json.loads(differing.stdout)["differing"]
    assert (link["group_id"], link["only_in_legacy_group"]) == ("g", ["u4"])
    world.sync.refresh_group("g")
    again = cli("sync", "status")
    assert again.returncode == 0, again.stderr
