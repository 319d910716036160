"""One contract for every implementation of the ``LegacyGroups`` port: the rules of cohorts, teams and
enrollment tracks (``domain.legacy``) as a user of the port sees them.

A subclass provides the ``world`` fixture: a :class:`LegacyWorld`, that is the port and a way to make a
course exist (enrolled users with their modes, the modes offered, the teamsets).
``tests/contract/test_legacy_groups_contract.py`` runs it on the local tables, on SQLite and on
PostgreSQL; ``tests/contract/test_openedx_client.py`` runs it against the fake Open edX server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import pytest

from courseinfra.domain.errors import ErrorKind
from courseinfra.domain.legacy import AssignmentType, LegacyError, Teamset, TeamsetType
from courseinfra.services.sync.ports import LegacyGroups

A, B = "course-v1:Org+A+2026", "course-v1:Org+B+2026"
#: A course no world seeds.
NOWHERE = "course-v1:Org+Nowhere+2026"
BULK = 10_000


class LegacyWorld(Protocol):
    legacy: LegacyGroups

    def seed(
        self,
        course_id: str,
        *,
        enrolled: Mapping[str, str],
        tracks: Sequence[str],
        teamsets: Sequence[Teamset],
    ) -> None:
        """Make a course exist (known to the platform) with these users enrolled (user id -> mode), these
        modes offered, these teamsets."""


def broken(call: Callable[[], object]) -> LegacyError:
    """The legacy error ``call`` raises (the test fails if it raises none)."""
    with pytest.raises(LegacyError) as caught:
        call()
    return caught.value


def teamset(course_id: str, teamset_id: str, max_team_size: int = 50) -> Teamset:
    return Teamset(teamset_id, course_id, f"Teamset {teamset_id}", TeamsetType.OPEN, max_team_size)


def seed_course(
    world: LegacyWorld,
    course_id: str = A,
    users: Sequence[str] = ("u1", "u2", "u3", "u4"),
    *,
    teamsets: Sequence[Teamset] = (),
) -> None:
    world.seed(
        course_id,
        enrolled=dict.fromkeys(users, "audit"),
        tracks=["audit", "verified"],
        teamsets=teamsets,
    )


class LegacyGroupsContract:
    """Subclasses provide the ``world`` fixture, with no course seeded."""

    # --- cohorts ---

    def test_create_get_and_list_cohorts(self, world: LegacyWorld) -> None:
        seed_course(world)
        legacy = world.legacy
        blue = legacy.create_cohort(A, "Blue", AssignmentType.RANDOM)
        green = legacy.create_cohort(A, "Green")
        assert blue.cohort_id != green.cohort_id
        assert (blue.course_id, blue.name, blue.assignment_type) == (A, "Blue", AssignmentType.RANDOM)
        assert green.assignment_type is AssignmentType.MANUAL

        got = legacy.get_cohort(A, blue.cohort_id)
        assert (got.cohort_id, got.name, got.assignment_type, got.user_count) == (
            blue.cohort_id,
            "Blue",
            AssignmentType.RANDOM,
            0,
        )
        listed = {c.cohort_id: (c.name, c.assignment_type) for c in legacy.list_cohorts(A)}
        assert listed == {
            blue.cohort_id: ("Blue", AssignmentType.RANDOM),
            green.cohort_id: ("Green", AssignmentType.MANUAL),
        }
        assert legacy.list_cohorts(B) == []

    def test_a_cohort_is_found_in_its_own_course_only(self, world: LegacyWorld) -> None:
        seed_course(world)
        seed_course(world, B)
        blue = world.legacy.create_cohort(A, "Blue")
        assert broken(lambda: world.legacy.get_cohort(B, blue.cohort_id)).code == "cohort-not-found"
        assert broken(lambda: world.legacy.get_cohort(A, "no-such-cohort")).code == "cohort-not-found"
        assert (
            broken(lambda: world.legacy.add_to_cohort(B, blue.cohort_id, ["u1"])).code == "cohort-not-found"
        )

    def test_update_renames_and_changes_the_assignment_type(self, world: LegacyWorld) -> None:
        seed_course(world)
        legacy = world.legacy
        cohort = legacy.create_cohort(A, "Blue")
        renamed = legacy.update_cohort(A, cohort.cohort_id, name="Navy")
        assert (renamed.cohort_id, renamed.name) == (cohort.cohort_id, "Navy")
        random = legacy.update_cohort(A, cohort.cohort_id, assignment_type=AssignmentType.RANDOM)
        assert (random.name, random.assignment_type) == ("Navy", AssignmentType.RANDOM)
        got = legacy.get_cohort(A, cohort.cohort_id)
        assert (got.name, got.assignment_type) == ("Navy", AssignmentType.RANDOM)
        assert [c.name for c in legacy.list_cohorts(A)] == ["Navy"]
        assert broken(lambda: legacy.update_cohort(A, "no-such-cohort", name="X")).code == "cohort-not-found"

    def test_a_name_is_unique_within_its_course_only(self, world: LegacyWorld) -> None:
        seed_course(world)
        seed_course(world, B)
        legacy = world.legacy
        blue = legacy.create_cohort(A, "Blue")
        green = legacy.create_cohort(A, "Green")
        assert broken(lambda: legacy.create_cohort(A, "Blue")).code == "cohort-name-exists"
        assert (
            broken(lambda: legacy.update_cohort(A, green.cohort_id, name="Blue")).code == "cohort-name-exists"
        )
        assert legacy.get_cohort(A, green.cohort_id).name == "Green"
        assert legacy.update_cohort(A, blue.cohort_id, name="Blue").name == "Blue"  # its own name
        other = legacy.create_cohort(B, "Blue")
        assert other.cohort_id != blue.cohort_id
        assert [c.name for c in legacy.list_cohorts(B)] == ["Blue"]
        assert len(legacy.list_cohorts(A)) == 2

    def test_no_cohort_or_team_is_created_in_a_course_the_platform_does_not_know(
        self, world: LegacyWorld
    ) -> None:
        """Issue 14: the local tables created a cohort in any course; Open edX refuses an unknown course
        key. (Its team API answers an unknown course as an unknown teamset: one bodiless 404.)"""
        seed_course(world, teamsets=[teamset(A, "projects")])
        legacy = world.legacy
        refused = broken(lambda: legacy.create_cohort(NOWHERE, "Blue"))
        assert (refused.code, refused.kind) == ("course-not-found", ErrorKind.NOT_FOUND)
        team = broken(lambda: legacy.create_team(NOWHERE, "projects", "Rockets"))
        assert team.code in ("course-not-found", "teamset-not-found")
        assert team.kind is ErrorKind.NOT_FOUND
        assert legacy.list_cohorts(NOWHERE) == []
        assert legacy.create_cohort(A, "Blue").name == "Blue", "the course seeded is known"

    def test_the_last_random_cohort_cannot_become_manual(self, world: LegacyWorld) -> None:
        seed_course(world)
        legacy = world.legacy
        first = legacy.create_cohort(A, "First", AssignmentType.RANDOM)
        error = broken(
            lambda: legacy.update_cohort(A, first.cohort_id, assignment_type=AssignmentType.MANUAL)
        )
        assert error.code == "last-random-cohort"
        assert legacy.get_cohort(A, first.cohort_id).assignment_type is AssignmentType.RANDOM

        second = legacy.create_cohort(A, "Second", AssignmentType.RANDOM)
        made_manual = legacy.update_cohort(A, first.cohort_id, assignment_type=AssignmentType.MANUAL)
        assert made_manual.assignment_type is AssignmentType.MANUAL
        error = broken(
            lambda: legacy.update_cohort(A, second.cohort_id, assignment_type=AssignmentType.MANUAL)
        )
        assert error.code == "last-random-cohort"
        assert legacy.get_cohort(A, second.cohort_id).assignment_type is AssignmentType.RANDOM

    def test_a_cohort_cannot_be_deleted(self, world: LegacyWorld) -> None:
        seed_course(world)
        legacy = world.legacy
        cohort = legacy.create_cohort(A, "Blue")
        legacy.add_to_cohort(A, cohort.cohort_id, ["u1"])
        assert broken(lambda: legacy.delete_cohort(A, cohort.cohort_id)).code == "legacy-not-deletable"
        assert [c.cohort_id for c in legacy.list_cohorts(A)] == [cohort.cohort_id]
        assert legacy.cohort_members(A, cohort.cohort_id) == {"u1"}
        assert broken(lambda: legacy.delete_cohort(A, "no-such-cohort")).code == "cohort-not-found"

    def test_adding_users_moves_them_from_their_cohort(self, world: LegacyWorld) -> None:
        seed_course(world)
        legacy = world.legacy
        blue = legacy.create_cohort(A, "Blue")
        green = legacy.create_cohort(A, "Green")

        first = legacy.add_to_cohort(A, blue.cohort_id, ["u1", "u2", "u1"])
        assert (sorted(first.added), dict(first.moved), first.present) == (["u1", "u2"], {}, ())
        assert legacy.cohort_members(A, blue.cohort_id) == {"u1", "u2"}
        assert legacy.get_cohort(A, blue.cohort_id).user_count == 2

        second = legacy.add_to_cohort(A, green.cohort_id, ["u2", "u3"])
        assert second.added == ("u3",)
        assert dict(second.moved) == {"u2": blue.cohort_id}
        assert second.present == ()
        assert legacy.cohort_members(A, blue.cohort_id) == {"u1"}
        assert legacy.cohort_members(A, green.cohort_id) == {"u2", "u3"}

        third = legacy.add_to_cohort(A, green.cohort_id, ["u3", "u1"])
        assert (third.added, dict(third.moved), third.present) == ((), {"u1": blue.cohort_id}, ("u3",))
        counts = {c.cohort_id: c.user_count for c in legacy.list_cohorts(A)}
        assert counts == {blue.cohort_id: 0, green.cohort_id: 3}

    def test_a_user_has_one_cohort_per_course(self, world: LegacyWorld) -> None:
        seed_course(world)
        seed_course(world, B)
        legacy = world.legacy
        in_a = legacy.create_cohort(A, "Blue")
        in_b = legacy.create_cohort(B, "Blue")
        legacy.add_to_cohort(A, in_a.cohort_id, ["u1"])
        result = legacy.add_to_cohort(B, in_b.cohort_id, ["u1"])
        assert (result.added, dict(result.moved)) == (("u1",), {})
        assert legacy.cohort_members(A, in_a.cohort_id) == {"u1"}
        assert legacy.cohort_members(B, in_b.cohort_id) == {"u1"}

    def test_remove_from_a_cohort(self, world: LegacyWorld) -> None:
        seed_course(world)
        legacy = world.legacy
        blue = legacy.create_cohort(A, "Blue")
        green = legacy.create_cohort(A, "Green")
        legacy.add_to_cohort(A, blue.cohort_id, ["u1", "u2", "u3"])
        legacy.add_to_cohort(A, green.cohort_id, ["u4"])

        legacy.remove_from_cohort(A, blue.cohort_id, ["u1"])
        assert legacy.cohort_members(A, blue.cohort_id) == {"u2", "u3"}
        assert legacy.get_cohort(A, blue.cohort_id).user_count == 2

        error = broken(lambda: legacy.remove_from_cohort(A, blue.cohort_id, ["u1"]))
        assert (error.code, error.details) == ("user-not-in-cohort", ["u1"])
        error = broken(lambda: legacy.remove_from_cohort(A, blue.cohort_id, ["u4"]))  # in another cohort
        assert (error.code, error.details) == ("user-not-in-cohort", ["u4"])
        assert legacy.cohort_members(A, green.cohort_id) == {"u4"}
        # A removal with a user that is not a member removes nobody.
        error = broken(lambda: legacy.remove_from_cohort(A, blue.cohort_id, ["u2", "u1"]))
        assert error.code == "user-not-in-cohort"
        assert "u1" in error.details
        assert legacy.cohort_members(A, blue.cohort_id) == {"u2", "u3"}

    # --- teams ---

    def test_create_get_and_list_teams(self, world: LegacyWorld) -> None:
        projects = Teamset("projects", A, "Projects", TeamsetType.PUBLIC_MANAGED, 5)
        seed_course(world, teamsets=[projects, teamset(A, "labs")])
        legacy = world.legacy
        assert {ts.teamset_id: ts for ts in legacy.list_teamsets(A)}["projects"] == projects
        assert {ts.teamset_id for ts in legacy.list_teamsets(A)} == {"projects", "labs"}
        assert legacy.list_teamsets(B) == []

        team = legacy.create_team(A, "projects", "Rockets", "We build rockets")
        assert (team.course_id, team.teamset_id, team.name, team.description) == (
            A,
            "projects",
            "Rockets",
            "We build rockets",
        )
        got = legacy.get_team(team.team_id)
        assert (got.team_id, got.name, got.description, got.teamset_id, got.size) == (
            team.team_id,
            "Rockets",
            "We build rockets",
            "projects",
            0,
        )
        other = legacy.create_team(A, "projects", "Kites")
        assert other.team_id != team.team_id

    def test_a_team_needs_a_teamset_of_its_course(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects")])
        seed_course(world, B)
        assert broken(lambda: world.legacy.create_team(A, "nope", "Rockets")).code == "teamset-not-found"
        assert broken(lambda: world.legacy.create_team(B, "projects", "Rockets")).code == "teamset-not-found"

    def test_update_a_team(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects")])
        legacy = world.legacy
        team = legacy.create_team(A, "projects", "Rockets", "old")
        assert legacy.update_team(team.team_id, name="Comets").name == "Comets"
        updated = legacy.update_team(team.team_id, description="new")
        assert (updated.name, updated.description) == ("Comets", "new")
        got = legacy.get_team(team.team_id)
        assert (got.name, got.description) == ("Comets", "new")

    def test_an_unknown_team_is_not_found(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects")])
        legacy = world.legacy
        assert broken(lambda: legacy.get_team("no-such-team")).code == "team-not-found"
        assert broken(lambda: legacy.update_team("no-such-team", name="X")).code == "team-not-found"
        assert broken(lambda: legacy.delete_team("no-such-team")).code == "team-not-found"

    def test_deleting_a_team_deletes_its_memberships(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects")])
        legacy = world.legacy
        team = legacy.create_team(A, "projects", "Rockets")
        legacy.add_to_team(team.team_id, ["u1", "u2"])
        legacy.delete_team(team.team_id)
        assert broken(lambda: legacy.get_team(team.team_id)).code == "team-not-found"
        again = legacy.create_team(A, "projects", "Rockets")
        assert legacy.add_to_team(again.team_id, ["u1"]) == ["u1"]  # no longer in a team of the teamset
        assert legacy.team_members(again.team_id) == {"u1"}

    def test_adding_members_skips_those_already_in(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects")])
        legacy = world.legacy
        team = legacy.create_team(A, "projects", "Rockets")
        assert legacy.add_to_team(team.team_id, ["u1", "u2", "u1"]) == ["u1", "u2"]
        assert legacy.add_to_team(team.team_id, ["u2", "u3"]) == ["u3"]
        assert legacy.add_to_team(team.team_id, ["u3"]) == []
        assert legacy.team_members(team.team_id) == {"u1", "u2", "u3"}
        assert legacy.get_team(team.team_id).size == 3

    def test_a_team_holds_at_most_its_teamsets_size(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "pairs", max_team_size=2)])
        legacy = world.legacy
        team = legacy.create_team(A, "pairs", "Duo")
        assert broken(lambda: legacy.add_to_team(team.team_id, ["u1", "u2", "u3"])).code == "team-full"
        assert legacy.team_members(team.team_id) == set()
        assert legacy.add_to_team(team.team_id, ["u1", "u2"]) == ["u1", "u2"]
        error = broken(lambda: legacy.add_to_team(team.team_id, ["u3"]))
        assert (error.code, error.details) == ("team-full", ["u3"])
        assert legacy.add_to_team(team.team_id, ["u2"]) == []  # a member already: not full for them
        assert legacy.team_members(team.team_id) == {"u1", "u2"}

    def test_a_user_is_in_one_team_of_a_teamset(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects"), teamset(A, "labs")])
        legacy = world.legacy
        rockets = legacy.create_team(A, "projects", "Rockets")
        kites = legacy.create_team(A, "projects", "Kites")
        lab = legacy.create_team(A, "labs", "Lab 1")
        legacy.add_to_team(rockets.team_id, ["u1"])
        error = broken(lambda: legacy.add_to_team(kites.team_id, ["u1"]))
        assert (error.code, error.details) == ("already-in-teamset", ["u1"])
        assert legacy.team_members(kites.team_id) == set()
        assert legacy.add_to_team(lab.team_id, ["u1"]) == ["u1"]  # another teamset
        assert legacy.team_members(rockets.team_id) == {"u1"}
        assert legacy.team_members(lab.team_id) == {"u1"}

    def test_a_member_must_be_enrolled(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects")])
        seed_course(world, B, users=["elsewhere"])
        legacy = world.legacy
        team = legacy.create_team(A, "projects", "Rockets")
        error = broken(lambda: legacy.add_to_team(team.team_id, ["u1", "stranger", "elsewhere"]))
        assert (error.code, sorted(error.details)) == ("not-enrolled", ["elsewhere", "stranger"])
        assert legacy.team_members(team.team_id) == set()

    def test_adding_members_is_all_or_nothing(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects")])
        legacy = world.legacy
        rockets = legacy.create_team(A, "projects", "Rockets")
        kites = legacy.create_team(A, "projects", "Kites")
        legacy.add_to_team(rockets.team_id, ["u3"])
        error = broken(lambda: legacy.add_to_team(kites.team_id, ["u1", "u2", "u3", "u4"]))
        assert error.code == "already-in-teamset"
        assert legacy.team_members(kites.team_id) == set()
        assert legacy.get_team(kites.team_id).size == 0
        assert legacy.add_to_team(kites.team_id, ["u1", "u2"]) == ["u1", "u2"]

    def test_remove_from_a_team(self, world: LegacyWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects")])
        legacy = world.legacy
        team = legacy.create_team(A, "projects", "Rockets")
        legacy.add_to_team(team.team_id, ["u1", "u2", "u3"])
        legacy.remove_from_team(team.team_id, ["u1"])
        assert legacy.team_members(team.team_id) == {"u2", "u3"}
        assert legacy.get_team(team.team_id).size == 2
        assert broken(lambda: legacy.remove_from_team(team.team_id, ["u1"])).code == "user-not-in-team"
        error = broken(lambda: legacy.remove_from_team(team.team_id, ["u2", "u4"]))
        assert error.code == "user-not-in-team"
        assert "u4" in error.details
        assert legacy.team_members(team.team_id) == {"u2", "u3"}

    # --- enrollment tracks ---

    def test_list_the_tracks_of_a_course(self, world: LegacyWorld) -> None:
        world.seed(A, enrolled={"u1": "audit"}, tracks=["audit", "verified"], teamsets=[])
        world.seed(B, enrolled={"u1": "audit"}, tracks=["audit", "professional"], teamsets=[])
        assert {t.mode for t in world.legacy.list_tracks(A)} == {"audit", "verified"}
        assert {t.mode for t in world.legacy.list_tracks(B)} == {"audit", "professional"}
        assert all(t.course_id == A for t in world.legacy.list_tracks(A))

    def test_the_members_of_a_track_are_the_users_enrolled_in_its_mode(self, world: LegacyWorld) -> None:
        world.seed(
            A,
            enrolled={"u1": "audit", "u2": "verified", "u3": "verified"},
            tracks=["audit", "verified"],
            teamsets=[],
        )
        world.seed(B, enrolled={"u4": "verified"}, tracks=["audit", "verified"], teamsets=[])
        assert world.legacy.track_members(A, "audit") == {"u1"}
        assert world.legacy.track_members(A, "verified") == {"u2", "u3"}
        assert world.legacy.track_members(B, "verified") == {"u4"}

    def test_set_track_moves_users_between_tracks(self, world: LegacyWorld) -> None:
        world.seed(
            A,
            enrolled={"u1": "audit", "u2": "verified", "u3": "audit"},
            tracks=["audit", "verified"],
            teamsets=[],
        )
        legacy = world.legacy
        assert legacy.set_track(A, ["u1", "u2"], "verified") == {"u1": "audit", "u2": "verified"}
        assert legacy.track_members(A, "verified") == {"u1", "u2"}
        assert legacy.track_members(A, "audit") == {"u3"}
        assert legacy.set_track(A, ["u2"], "audit") == {"u2": "verified"}
        assert legacy.track_members(A, "audit") == {"u2", "u3"}
        assert legacy.track_members(A, "verified") == {"u1"}

    def test_set_track_to_a_mode_the_course_does_not_offer(self, world: LegacyWorld) -> None:
        world.seed(A, enrolled={"u1": "audit"}, tracks=["audit", "verified"], teamsets=[])
        world.seed(B, enrolled={"u2": "audit"}, tracks=["audit", "professional"], teamsets=[])
        legacy = world.legacy
        assert broken(lambda: legacy.set_track(A, ["u1"], "professional")).code == "unknown-track"
        assert broken(lambda: legacy.set_track(A, ["u1"], "honor")).code == "unknown-track"
        assert legacy.track_members(A, "audit") == {"u1"}

    def test_set_track_needs_an_enrolment(self, world: LegacyWorld) -> None:
        world.seed(A, enrolled={"u1": "audit"}, tracks=["audit", "verified"], teamsets=[])
        world.seed(B, enrolled={"u2": "audit"}, tracks=["audit", "verified"], teamsets=[])
        legacy = world.legacy
        error = broken(lambda: legacy.set_track(A, ["u1", "u2", "stranger"], "verified"))
        assert (error.code, sorted(error.details)) == ("not-enrolled", ["stranger", "u2"])
        assert legacy.track_members(A, "audit") == {"u1"}  # nobody moved
        assert legacy.track_members(A, "verified") == set()
        assert legacy.track_members(B, "audit") == {"u2"}

    def test_a_user_has_exactly_one_track_per_course(self, world: LegacyWorld) -> None:
        world.seed(A, enrolled={"u1": "audit", "u2": "audit"}, tracks=["audit", "verified"], teamsets=[])
        world.seed(B, enrolled={"u1": "audit"}, tracks=["audit", "verified"], teamsets=[])
        legacy = world.legacy
        legacy.set_track(A, ["u1"], "verified")
        legacy.set_track(A, ["u1"], "verified")  # again: no second track
        for course_id, users in ((A, ("u1", "u2")), (B, ("u1",))):
            tracks = [legacy.track_members(course_id, t.mode) for t in legacy.list_tracks(course_id)]
            for user_id in users:
                assert sum(user_id in members for members in tracks) == 1, (course_id, user_id)
        assert legacy.track_members(B, "audit") == {"u1"}  # the other course's track is its own

    # --- many users in one call ---

    def test_ten_thousand_users_in_one_call(self, world: LegacyWorld) -> None:
        users = [f"user-{n:05d}" for n in range(BULK)]
        seed_course(world, users=users, teamsets=[teamset(A, "crowd", max_team_size=2 * BULK)])
        legacy = world.legacy
        blue = legacy.create_cohort(A, "Blue")
        green = legacy.create_cohort(A, "Green")
        assert len(legacy.add_to_cohort(A, blue.cohort_id, users).added) == BULK
        assert legacy.get_cohort(A, blue.cohort_id).user_count == BULK
        moved = legacy.add_to_cohort(A, green.cohort_id, users)
        assert len(moved.moved) == BULK
        assert set(moved.moved.values()) == {blue.cohort_id}
        counts = {c.cohort_id: c.user_count for c in legacy.list_cohorts(A)}
        assert counts == {blue.cohort_id: 0, green.cohort_id: BULK}

        team = legacy.create_team(A, "crowd", "Everyone")
        assert len(legacy.add_to_team(team.team_id, users)) == BULK
        assert legacy.get_team(team.team_id).size == BULK
        assert len(legacy.team_members(team.team_id)) == BULK
