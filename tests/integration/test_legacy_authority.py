"""Per-link authority, membership that follows enrolment, and reconciliation (ADR 0022), on both legacy
backends and every database backend: what an Open edX event does to a link of each authority (pull,
or drift recorded), edits refused under ``legacy``, an unenrolment removing the learner from a link
that follows enrolment, and ``sync reconcile`` (dry run, pull, push) from the service, the API and the
command line."""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from courseinfra.domain.criteria import InvalidCriteria
from courseinfra.domain.errors import ErrorKind
from courseinfra.domain.legacy import LegacyAuthoritative, link_of
from courseinfra.domain.openedx_events import (
    CohortMembershipChanged,
    LmsCourse,
    LmsUser,
    OpenedxEvent,
    UnenrollmentCompleted,
)
from courseinfra.entrypoints.schemas.sync import SyncStatusOut
from courseinfra.services import enrolments
from courseinfra.services.groups import GroupDefinition
from courseinfra.services.sync import sync_status
from courseinfra.settings import Settings
from tests.support.cli import COURSEINFRA, Cli
from tests.support.http import api_client, error_code, ok
from tests.support.legacy_world import World, criteria, legacy_members, linked_id, members

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def link(
    world: World,
    group_id: str,
    kind: str,
    include: tuple[str, ...] = (),
    *,
    authority: str | None = None,
    follow_enrolment: bool | None = None,
) -> str:
    """Create a linked group with the policy given (the defaults when None); return its legacy id."""
    tree = criteria(world, kind)
    if authority is not None:
        tree["config"]["authority"] = authority
    if follow_enrolment is not None:
        tree["config"]["follow_enrolment"] = follow_enrolment
    world.sync.create_group(
        group_id, GroupDefinition(name=group_id.title(), scope="instance", criteria=tree, include=include)
    )
    return linked_id(world, group_id)


def learner(user: str) -> LmsUser:
    return LmsUser(
        id=sum(map(ord, user)), username=user, email=f"{user}@example.org", name=user, is_active=True
    )


def course(world: World) -> LmsCourse:
    return LmsCourse(course_key=world.course, display_name="Demo", start=None, end=None)


def cohort_changed(world: World, user: str) -> OpenedxEvent:
    return CohortMembershipChanged(user=learner(user), course=course(world), cohort_name="whichever")


def unenrolled(world: World, user: str) -> OpenedxEvent:
    return UnenrollmentCompleted(
        user=learner(user), course=course(world), mode="audit", is_active=False, creation_date=AT
    )


def unenrol(world: World, user: str) -> None:
    """The learner leaves the course in the legacy system."""
    if world.fake is not None:
        key = (user, world.course)
        world.fake.enrolments[key] = replace(world.fake.enrolments[key], is_active=False)
        return
    enrolments.unenrol(user, "B1", world.app.uow_factory(), at=AT)


def add(world: World, kind: str, legacy_id: str, users: list[str]) -> None:
    """An edit made in the LMS, not through courseinfra."""
    if kind == "cohort":
        world.legacy.add_to_cohort(world.course, legacy_id, users)
    else:
        world.legacy.add_to_team(legacy_id, users)


def remove(world: World, kind: str, legacy_id: str, users: list[str]) -> None:
    if kind == "cohort":
        world.legacy.remove_from_cohort(world.course, legacy_id, users)
    else:
        world.legacy.remove_from_team(legacy_id, users)


def status(world: World) -> Any:
    return SyncStatusOut.of(sync_status(world.app.uow_factory)).model_dump(mode="json")


def drift(world: World) -> list[tuple[str, str, str]]:
    return [(d["group_id"], d["user_id"], d["side"]) for d in status(world)["drift"]]


def history_length(world: World, group_id: str) -> int:
    with world.app.uow_factory().reading() as uow:
        return len(uow.memberships.history(group_id, limit=1000))


# --- the link's policy -----------------------------------------------------------------------------------


def test_a_link_reads_the_defaults_and_shows_its_policy(world: World) -> None:
    link(world, "g", "cohort", ("u1",))
    link(world, "t", "team", authority="both", follow_enrolment=True)
    stored = link_of(world.sync.get_group("g").group.criteria)
    assert stored is not None
    assert (stored.authority.value, stored.follow_enrolment) == ("user_group", False)
    with api_client(world.app) as client:
        shown = ok(client.get("/v1/groups/t"))["criteria"]["config"]
    assert (shown["authority"], shown["follow_enrolment"]) == ("both", True)


def test_follow_enrolment_is_refused_on_a_track(world: World) -> None:
    with pytest.raises(InvalidCriteria, match="follow_enrolment is for cohort and team links"):
        link(world, "v", "track", follow_enrolment=True)
    with pytest.raises(InvalidCriteria, match="authority"):
        link(world, "v", "track", authority="lms")


# --- authority legacy: edits through courseinfra are refused -----------------------------------------------


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_under_legacy_authority_membership_edits_and_renames_are_refused(world: World, kind: str) -> None:
    with pytest.raises(LegacyAuthoritative):
        link(world, "early", kind, ("u1",), authority="legacy")
    legacy_id = link(world, "g", kind, authority="legacy")
    add(world, kind, legacy_id, ["u1", "u2"])
    world.sync.refresh_group("g")  # a pull is allowed
    assert members(world, "g") == {"u1", "u2"}
    refusals = [
        lambda: world.sync.change_legacy_members("g", add=["u3"]),
        lambda: world.sync.change_legacy_members("g", remove=["u1"]),
        lambda: world.sync.import_members("g", "user_id\nu3\n"),
        lambda: world.sync.update_group("g", expected_version=None, include=["u1"]),
        lambda: world.sync.update_group("g", expected_version=None, name="Renamed"),
    ]
    for refused in refusals:
        with pytest.raises(LegacyAuthoritative) as caught:
            refused()
        assert (caught.value.code, caught.value.kind) == ("legacy-authoritative", ErrorKind.CONFLICT)
        assert "the authority" in str(caught.value)
    assert legacy_members(world, kind, legacy_id) == {"u1", "u2"} == members(world, "g")
    # What changes no membership is allowed: the same include list, a description.
    world.sync.update_group("g", expected_version=None, include=["u2", "u1"], description="LMS-managed")
    assert status(world)["failures"] == []
    with api_client(world.app) as client:
        refused = client.post("/v1/groups/g/legacy-members", json={"add": ["u3"]})
        assert error_code(refused, 409) == "legacy-authoritative"


def test_the_authority_of_a_link_can_change(world: World) -> None:
    legacy_id = link(world, "g", "cohort", ("u1",))
    tree = criteria(world, "cohort", legacy_id)
    tree["config"]["authority"] = "legacy"
    world.sync.update_group("g", expected_version=None, criteria=tree)
    changed = link_of(world.sync.get_group("g").group.criteria)
    assert changed is not None
    assert changed.authority.value == "legacy"
    assert changed.legacy_id == legacy_id
    with pytest.raises(LegacyAuthoritative):
        world.sync.change_legacy_members("g", add=["u2"])


# --- an Open edX event, by authority ---------------------------------------------------------------------


@pytest.mark.parametrize("authority", ["legacy", "both"])
def test_an_event_pulls_when_the_legacy_group_is_an_authority(world: World, authority: str) -> None:
    legacy_id = link(world, "g", "cohort", authority=authority)
    world.legacy.add_to_cohort(world.course, legacy_id, ["u3"])
    assert world.sync.apply_legacy_event(cohort_changed(world, "u3")) == 1
    assert members(world, "g") == {"u3"}
    assert drift(world) == []


def test_an_event_on_a_user_group_link_records_drift_that_reconciliation_undoes(world: World) -> None:
    legacy_id = link(world, "g", "cohort", ("u1", "u2"))
    # The LMS adds u3 and removes u1; their events arrive. Nothing is pulled: drift is recorded.
    world.legacy.add_to_cohort(world.course, legacy_id, ["u3"])
    world.legacy.remove_from_cohort(world.course, legacy_id, ["u1"])
    before = history_length(world, "g")
    for user in ("u3", "u1", "u2"):
        assert world.sync.apply_legacy_event(cohort_changed(world, user)) == 1
    assert members(world, "g") == {"u1", "u2"}
    assert history_length(world, "g") == before
    assert drift(world) == [("g", "u1", "only-in-user-group"), ("g", "u3", "only-in-legacy-group")]
    assert not status(world)["failures"]
    # A dry run reports and writes nothing.
    [found] = world.sync.reconcile(dry_run=True)
    assert (found.action, found.only_in_legacy_group, found.only_in_user_group) == ("push", 1, 1)
    assert (found.sample_only_in_legacy_group, found.sample_only_in_user_group) == (("u3",), ("u1",))
    assert (found.added, found.removed, found.fixed) == (1, 1, False)
    assert world.legacy.cohort_members(world.course, legacy_id) == {"u2", "u3"}
    assert len(drift(world)) == 2
    assert history_length(world, "g") == before
    # Reconciliation pushes: the cohort is the user group's again, and the drift is gone.
    [fixed] = world.sync.reconcile("g")
    assert (fixed.action, fixed.added, fixed.removed, fixed.fixed) == ("push", 1, 1, True)
    assert world.legacy.cohort_members(world.course, legacy_id) == {"u1", "u2"} == members(world, "g")
    assert drift(world) == []
    assert status(world)["differing"] == []


def test_an_event_showing_both_sides_agree_again_forgets_the_drift(world: World) -> None:
    legacy_id = link(world, "g", "cohort", ("u1",))
    world.legacy.add_to_cohort(world.course, legacy_id, ["u3"])
    world.sync.apply_legacy_event(cohort_changed(world, "u3"))
    assert drift(world) == [("g", "u3", "only-in-legacy-group")]
    world.legacy.remove_from_cohort(world.course, legacy_id, ["u3"])  # the LMS edit is undone there
    world.sync.apply_legacy_event(cohort_changed(world, "u3"))
    assert drift(world) == []


# --- membership follows enrolment -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cohort", "team"])
def test_an_unenrolment_removes_the_learner_from_a_link_that_follows_enrolment(
    world: World, kind: str
) -> None:
    following = link(world, "follows", kind, ("u1", "u2"), follow_enrolment=True)
    not_following = link(world, "stays", kind, ("u3",)) if kind == "cohort" else None
    unenrol(world, "u1")
    world.sync.apply_legacy_event(unenrolled(world, "u1"))
    assert legacy_members(world, kind, following) == {"u2"} == members(world, "follows")
    # An unenrolment event for a learner enrolled again (or still) changes nothing: the state is read.
    world.sync.apply_legacy_event(unenrolled(world, "u2"))
    assert members(world, "follows") == {"u2"}
    if not_following is not None:  # a cohort link that does not follow enrolment keeps them
        unenrol(world, "u3")
        world.sync.apply_legacy_event(unenrolled(world, "u3"))
        assert legacy_members(world, kind, not_following) == {"u3"} == members(world, "stays")


# --- reconciliation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("authority", ["legacy", "both"])
def test_reconciliation_pulls_when_the_legacy_group_is_an_authority(world: World, authority: str) -> None:
    legacy_id = link(world, "t", "team", authority="both")
    world.sync.change_legacy_members("t", add=["u1", "u2"])
    if authority == "legacy":
        tree = criteria(world, "team", legacy_id)
        tree["config"]["authority"] = "legacy"
        world.sync.update_group("t", expected_version=None, criteria=tree)
    world.legacy.add_to_team(legacy_id, ["u3"])
    world.legacy.remove_from_team(legacy_id, ["u1"])
    [dry] = world.sync.reconcile(dry_run=True)
    assert members(world, "t") == {"u1", "u2"}
    assert (dry.action, dry.added, dry.removed, dry.fixed) == ("pull", 1, 1, False)
    [fixed] = world.sync.reconcile()
    assert (fixed.action, fixed.added, fixed.removed, fixed.fixed) == ("pull", 1, 1, True)
    assert members(world, "t") == {"u2", "u3"} == world.legacy.team_members(legacy_id)


def test_reconciliation_of_a_track_cannot_remove_but_reports_it(world: World) -> None:
    link(world, "v", "track")  # u4 and u5 are verified
    world.sync.change_legacy_members("v", add=["u1"])
    world.legacy.set_track(world.course, ["u2"], "verified")  # an LMS edit
    world.legacy.set_track(world.course, ["u1"], "audit")
    [fixed] = world.sync.reconcile("v")
    assert (fixed.action, fixed.added, fixed.not_fixed) == ("push", 1, ("u2",))
    assert world.legacy.track_members(world.course, "verified") == {"u1", "u2", "u4", "u5"}
    assert members(world, "v") == {"u1", "u4", "u5"}
    assert drift(world) == [("v", "u2", "only-in-legacy-group")]


def test_reconcile_through_the_api(world: World) -> None:
    legacy_id = link(world, "g", "cohort", ("u1",))
    world.legacy.add_to_cohort(world.course, legacy_id, ["u2"])
    with api_client(world.app, role="reader") as reader:
        assert error_code(reader.post("/v1/sync/reconcile", json={}), 403) == "forbidden"
    with api_client(world.app, role="operator") as client:
        dry = ok(client.post("/v1/sync/reconcile", json={"group_id": "g", "dry_run": True}))
        assert (dry["drifting"], dry["failed"]) == (1, 0)
        [report] = dry["links"]
        assert (report["group_id"], report["kind"], report["authority"], report["action"]) == (
            "g",
            "cohort",
            "user_group",
            "push",
        )
        assert (report["sample_only_in_legacy_group"], report["removed"], report["fixed"]) == (
            ["u2"],
            1,
            False,
        )
        assert world.legacy.cohort_members(world.course, legacy_id) == {"u1", "u2"}
        done = ok(client.post("/v1/sync/reconcile", json={"dry_run": False}))
        assert [r["fixed"] for r in done["links"]] == [True]
        assert world.legacy.cohort_members(world.course, legacy_id) == {"u1"}
        assert (
            error_code(client.post("/v1/sync/reconcile", json={"group_id": "nope"}), 404) == "group-not-found"
        )
        assert ok(client.get("/v1/sync/status"))["drift"] == []
    world.sync.create_group("plain", GroupDefinition(name="Plain", scope="instance"))
    with api_client(world.app, role="operator") as client:
        refused = client.post("/v1/sync/reconcile", json={"group_id": "plain"})
        assert error_code(refused, 409) == "group-not-linked"


@pytest.mark.parametrize("world", ["local"], indirect=True)
def test_cli_sync_reconcile_and_status(world: World, settings: Settings) -> None:
    cli = Cli(settings)
    legacy_id = link(world, "g", "cohort", ("u1",))
    world.legacy.add_to_cohort(world.course, legacy_id, ["u2"])
    world.sync.apply_legacy_event(cohort_changed(world, "u2"))
    shown = cli("sync", "status")
    assert shown.returncode == 1, shown.stderr
    assert [(d["user_id"], d["side"]) for d in json.loads(shown.stdout)["drift"]] == [
        ("u2", "only-in-legacy-group")
    ]
    assert cli("sync", "reconcile").returncode == 2
    dry = cli("sync", "reconcile", "--all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["links"][0]["fixed"] is False
    assert world.legacy.cohort_members(world.course, legacy_id) == {"u1", "u2"}
    done = cli("sync", "reconcile", "--link", "g")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["links"][0]["removed"] == 1
    assert world.legacy.cohort_members(world.course, legacy_id) == {"u1"}
    assert cli("sync", "status").returncode == 0
    world.legacy.add_to_cohort(world.course, legacy_id, ["u3"])
    process = subprocess.Popen(
        [*COURSEINFRA, "sync", "reconcile", "--all", "--every", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        second = json.loads(process.stdout.readline())
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, errors
    assert [r["removed"] for r in first["links"]] == [1]
    assert [r["removed"] for r in second["links"]] == [0]
    assert world.legacy.cohort_members(world.course, legacy_id) == {"u1"}
