"""The Open edX client (``OpenEdxLegacyGroups``) against a fake Open edX served over real HTTP: the
``LegacyGroups`` contract, then what only a remote client has (the wire's quirks, the transport, failures
midway through an operation on several users)."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from courseinfra.adapters.legacy.openedx import OpenEdxLegacyGroups
from courseinfra.domain.legacy import AssignmentType, Cohort, LegacyUnavailable, Teamset, Track
from tests.support.legacy_groups_contract import A, LegacyGroupsContract, broken, seed_course, teamset
from tests.support.openedx import TOKEN, FakeOpenEdx, _CohortRecord

COHORTS = f"/api/cohorts/v1/courses/{A}/cohorts/"


@dataclass
class OpenEdxWorld:
    """The client, and the fake's admin seeding as the way to make a course exist."""

    legacy: OpenEdxLegacyGroups
    fake: FakeOpenEdx
    base_url: str

    def seed(
        self,
        course_id: str,
        *,
        enrolled: Mapping[str, str],
        tracks: Sequence[str],
        teamsets: Sequence[Teamset],
    ) -> None:
        self.fake.seed(course_id, enrolled=enrolled, tracks=tracks, teamsets=teamsets)

    def wire(self, method: str, path: str, *, scheme: str = "Bearer", **kwargs: Any) -> httpx.Response:
        """A raw request to the fake, as the client would send it."""
        headers = {"Authorization": f"{scheme} {TOKEN}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=10, **kwargs)

    def calls(self, method: str, prefix: str) -> list[str]:
        return [path for m, path in self.fake.calls if m == method and path.startswith(prefix)]


@pytest.fixture
def world(openedx: tuple[str, FakeOpenEdx]) -> Iterator[OpenEdxWorld]:
    base_url, fake = openedx
    legacy = OpenEdxLegacyGroups(base_url, TOKEN)
    yield OpenEdxWorld(legacy, fake, base_url)
    legacy.close()


class TestOpenEdxClient(LegacyGroupsContract):
    """The contract, on the client against the fake (``world`` above)."""


# --- the wire ----------------------------------------------------------------------------------------


def _cohorts(world: OpenEdxWorld, count: int) -> None:
    for n in range(count):
        record = _CohortRecord(world.fake.next_id(), A, f"cohort {n:04d}", "manual")
        world.fake.cohorts[record.id] = record


@pytest.mark.parametrize("count", [205, 200])
def test_the_cohort_list_is_a_bare_array_read_page_after_page(world: OpenEdxWorld, count: int) -> None:
    seed_course(world)
    _cohorts(world, count)
    page = world.wire("GET", COHORTS, params={"page": 2})
    assert page.status_code == 200
    assert isinstance(page.json(), list)
    assert [c["name"] for c in page.json()] == [f"cohort {n:04d}" for n in range(10, 20)]  # 10 a page
    world.fake.calls.clear()

    names = [c.name for c in world.legacy.list_cohorts(A)]

    assert names == [f"cohort {n:04d}" for n in range(count)]
    # 100 a page; a full last page is followed by the 404 of the page after it.
    assert len(world.calls("GET", COHORTS)) == 3


def test_a_cohort_patch_answers_204_and_the_client_reads_the_cohort_back(world: OpenEdxWorld) -> None:
    seed_course(world)
    blue = world.legacy.create_cohort(A, "Blue")
    raw = world.wire("PATCH", f"{COHORTS}{blue.cohort_id}", json={"name": "Navy"})
    assert (raw.status_code, raw.content) == (204, b"")
    assert world.legacy.update_cohort(A, blue.cohort_id, name=" Teal ").name == "Teal"
    assert world.wire("PATCH", f"{COHORTS}{blue.cohort_id}", json={}).json()["error_code"] == "missing-fields"


def test_a_duplicate_name_is_a_500_on_create_and_a_400_on_rename(world: OpenEdxWorld) -> None:
    seed_course(world)
    blue = world.legacy.create_cohort(A, "Blue")
    green = world.legacy.create_cohort(A, "Green")
    assert world.wire("POST", COHORTS, json={"name": "Blue", "assignment_type": "manual"}).status_code == 500
    rename = world.wire("PATCH", f"{COHORTS}{green.cohort_id}", json={"name": "Blue"})
    assert (rename.status_code, rename.json()["error_code"]) == (400, "cohort-name-exists")
    world.fake.calls.clear()

    assert broken(lambda: world.legacy.create_cohort(A, "Blue")).code == "cohort-name-exists"
    assert world.calls("POST", COHORTS) == []  # checked on the list, never sent
    assert world.legacy.get_cohort(A, blue.cohort_id).name == "Blue"


def test_a_name_taken_between_the_check_and_the_post_is_still_a_name_that_exists(
    world: OpenEdxWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_course(world)
    world.legacy.create_cohort(A, "Blue")
    real_list = world.legacy.list_cohorts
    reads: list[str] = []

    def stale_then_real(course_id: str) -> list[Cohort]:
        reads.append(course_id)
        return [] if len(reads) == 1 else real_list(course_id)  # the first read misses the new cohort

    monkeypatch.setattr(world.legacy, "list_cohorts", stale_then_real)
    assert broken(lambda: world.legacy.create_cohort(A, "Blue")).code == "cohort-name-exists"
    assert world.calls("POST", COHORTS) == [COHORTS, COHORTS]  # the first create, then the 500


def test_a_moved_users_previous_cohort_name_becomes_its_id(world: OpenEdxWorld) -> None:
    seed_course(world)
    blue = world.legacy.create_cohort(A, "Blue")
    green = world.legacy.create_cohort(A, "Green")
    world.legacy.add_to_cohort(A, blue.cohort_id, ["u1", "u2"])
    raw = world.wire("POST", f"{COHORTS}{green.cohort_id}/users", json={"users": ["u1"]})
    assert raw.json()["changed"] == [{"username": "u1", "email": "u1@example.com", "previous_cohort": "Blue"}]

    result = world.legacy.add_to_cohort(A, green.cohort_id, ["u2"])
    assert dict(result.moved) == {"u2": blue.cohort_id}


def test_cohort_additions_go_1000_users_a_call(world: OpenEdxWorld) -> None:
    users = [f"user-{n:04d}" for n in range(2500)]
    seed_course(world, users=users)
    blue = world.legacy.create_cohort(A, "Blue")
    world.fake.calls.clear()
    assert len(world.legacy.add_to_cohort(A, blue.cohort_id, users).added) == 2500
    assert len(world.calls("POST", f"{COHORTS}{blue.cohort_id}/users")) == 3


def test_a_cohort_is_never_deleted_on_the_wire(world: OpenEdxWorld) -> None:
    seed_course(world)
    blue = world.legacy.create_cohort(A, "Blue")
    assert world.wire("DELETE", f"{COHORTS}{blue.cohort_id}").status_code == 405
    world.fake.calls.clear()
    assert broken(lambda: world.legacy.delete_cohort(A, blue.cohort_id)).code == "legacy-not-deletable"
    assert [m for m, _ in world.fake.calls] == ["GET"]


def test_an_unknown_username_in_a_cohort_addition(world: OpenEdxWorld) -> None:
    seed_course(world)
    blue = world.legacy.create_cohort(A, "Blue")
    raw = world.wire("POST", f"{COHORTS}{blue.cohort_id}/users", json={"users": ["ghost", "a@b.org", "x@"]})
    assert (raw.json()["unknown"], raw.json()["preassigned"], raw.json()["invalid"]) == (
        ["ghost"],
        ["a@b.org"],
        ["x@"],
    )
    # Open edX adds the users it knows in the same call: they are the ones to compensate.
    error = broken(lambda: world.legacy.add_to_cohort(A, blue.cohort_id, ["u1", "ghost"]))
    assert (error.code, error.details) == ("user-not-found", ["u1"])
    assert "ghost" in str(error)


def test_the_enrollments_list_is_cursor_paged(world: OpenEdxWorld) -> None:
    users = [f"user-{n:03d}" for n in range(250)]
    world.seed(A, enrolled=dict.fromkeys(users, "verified"), tracks=["audit", "verified"], teamsets=[])
    first = world.wire("GET", "/api/enrollment/v1/enrollments/", params={"course_id": A}).json()
    assert set(first) == {"next", "previous", "results"}
    assert len(first["results"]) == 100
    assert "cursor=" in first["next"]
    assert first["results"][0]["user"] == "user-249"  # newest first
    world.fake.calls.clear()

    assert world.legacy.track_members(A, "verified") == set(users)
    assert len(world.calls("GET", "/api/enrollment/v1/enrollments")) == 3


def test_the_enrolment_of_a_user_without_one_is_an_empty_200(world: OpenEdxWorld) -> None:
    seed_course(world)
    none = world.wire("GET", f"/api/enrollment/v1/enrollment/stranger,{A}")
    assert (none.status_code, none.content) == (200, b"")
    unknown = world.wire(
        "POST",
        "/api/enrollment/v1/enrollment",
        json={"user": "stranger", "mode": "audit", "course_details": {"course_id": A}},
    )
    assert unknown.status_code == 406
    expired = world.wire(
        "POST",
        "/api/enrollment/v1/enrollment",
        json={"user": "u1", "mode": "honor", "course_details": {"course_id": A}},
    )
    assert expired.status_code == 400
    assert "expired or otherwise unavailable" in expired.json()["message"]
    assert [t.mode for t in world.legacy.list_tracks(A)] == ["audit", "verified"]
    assert world.legacy.list_tracks(A)[1] == Track(A, "verified", "Verified")


def test_teams_are_created_with_200_and_need_a_description(world: OpenEdxWorld) -> None:
    seed_course(world, teamsets=[teamset(A, "projects")])
    body = {"course_id": A, "topic_id": "projects", "name": "Rockets"}
    blank = world.wire("POST", "/api/team/v0/teams/", json={**body, "description": ""})
    assert blank.json()["field_errors"]["description"]["developer_message"] == "This field may not be blank."
    created = world.wire("POST", "/api/team/v0/teams/", json={**body, "description": "Up"})
    assert created.status_code == 200
    assert created.json()["id"].startswith("rockets-")
    joined = world.wire(
        "POST", "/api/team/v0/team_membership/", json={"team_id": created.json()["id"], "username": "u1"}
    )
    assert joined.status_code == 200

    # The client describes a team created without a description by its name.
    assert world.legacy.create_team(A, "projects", "Kites").description == "Kites"


def test_teams_refuse_a_jwt_header_that_cohorts_accept(world: OpenEdxWorld) -> None:
    seed_course(world, teamsets=[teamset(A, "projects")])
    assert world.wire("GET", COHORTS, scheme="JWT").status_code == 200
    teams = world.wire("GET", "/api/team/v0/topics/", scheme="JWT", params={"course_id": A})
    assert (teams.status_code, teams.json()["error_code"]) == (401, "token_nonexistent")
    assert world.wire("GET", "/api/team/v0/topics/", params={"course_id": A}).status_code == 200


# --- transport and failures --------------------------------------------------------------------------


def test_a_refused_token_is_legacy_unavailable_and_says_so(world: OpenEdxWorld) -> None:
    seed_course(world)
    stranger = OpenEdxLegacyGroups(world.base_url, "not-the-token")
    try:
        error = broken(lambda: stranger.list_cohorts(A))
    finally:
        stranger.close()
    assert isinstance(error, LegacyUnavailable)
    assert error.code == "legacy-unavailable"
    assert "refused the token (401)" in str(error)


def test_a_timeout_is_legacy_unavailable(world: OpenEdxWorld) -> None:
    seed_course(world)
    world.fake.delay_next("GET", COHORTS, 1.0)
    hasty = OpenEdxLegacyGroups(world.base_url, TOKEN, timeout=0.2)
    try:
        error = broken(lambda: hasty.list_cohorts(A))
    finally:
        hasty.close()
    assert isinstance(error, LegacyUnavailable)
    assert error.code == "legacy-unavailable"
    assert "did not answer" in str(error)


def test_an_unreachable_platform_is_legacy_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free, and nothing listens once closed
    nowhere = OpenEdxLegacyGroups(f"http://127.0.0.1:{port}", TOKEN, timeout=2)
    try:
        assert broken(lambda: nowhere.list_tracks(A)).code == "legacy-unavailable"
    finally:
        nowhere.close()


def test_an_unexplained_500_names_its_status_and_body(world: OpenEdxWorld) -> None:
    seed_course(world)
    world.fake.fail_next("GET", "/api/enrollment/v1/course/", status=502, body="<h1>Bad gateway</h1>")
    error = broken(lambda: world.legacy.list_tracks(A))
    assert error.code == "legacy-unavailable"
    assert "502" in str(error)
    assert "Bad gateway" in str(error)


def test_a_failure_midway_through_a_team_addition_names_the_users_added(world: OpenEdxWorld) -> None:
    seed_course(world, teamsets=[teamset(A, "projects")])
    team = world.legacy.create_team(A, "projects", "Rockets")
    world.fake.fail_next("POST", "/api/team/v0/team_membership/", after=2)
    error = broken(lambda: world.legacy.add_to_team(team.team_id, ["u1", "u2", "u3", "u4"]))
    assert (error.code, error.details) == ("legacy-unavailable", ["u1", "u2"])
    assert world.legacy.team_members(team.team_id) == {"u1", "u2"}
    # The caller compensates, or simply retries: the members already in are skipped.
    assert world.legacy.add_to_team(team.team_id, ["u1", "u2", "u3", "u4"]) == ["u3", "u4"]


def test_a_rule_broken_midway_keeps_its_code_with_the_users_added(world: OpenEdxWorld) -> None:
    # The platform caps teams at the course's max_team_size, which the client cannot read: its "full"
    # can come at any POST (injected here as the platform's answer).
    seed_course(world, teamsets=[teamset(A, "projects", max_team_size=4)])
    team = world.legacy.create_team(A, "projects", "Rockets")
    world.fake.fail_next(
        "POST",
        "/api/team/v0/team_membership/",
        after=1,
        status=400,
        body='{"developer_message": "This team is already full.", "user_message": "full"}',
    )
    error = broken(lambda: world.legacy.add_to_team(team.team_id, ["u1", "u2", "u3"]))
    # Undone by the client: a rule error means nothing changed, with the users refused in details.
    assert (error.code, error.details) == ("team-full", ["u2", "u3"])
    assert world.legacy.team_members(team.team_id) == set()


def test_a_rule_broken_midway_whose_undoing_fails_names_the_users_left_in(world: OpenEdxWorld) -> None:
    seed_course(world, teamsets=[teamset(A, "projects")])
    team = world.legacy.create_team(A, "projects", "Rockets")
    world.fake.fail_next(
        "POST",
        "/api/team/v0/team_membership/",
        after=2,
        status=400,
        body='{"developer_message": "The user u3 is not enrolled in the course associated with this team."}',
    )
    world.fake.fail_next("DELETE", f"/api/team/v0/team_membership/{team.team_id},u1", status=503)
    error = broken(lambda: world.legacy.add_to_team(team.team_id, ["u1", "u2", "u3"]))
    assert isinstance(error, LegacyUnavailable)
    assert error.details == ["u1"]  # u2 was taken back, u1 could not be
    assert world.legacy.team_members(team.team_id) == {"u1"}


def test_a_failure_midway_through_set_track_names_the_users_moved(world: OpenEdxWorld) -> None:
    seed_course(world)
    world.fake.fail_next("POST", "/api/enrollment/v1/enrollment", after=1)
    error = broken(lambda: world.legacy.set_track(A, ["u1", "u2", "u3"], "verified"))
    assert (error.code, error.details) == ("legacy-unavailable", ["u1"])
    assert world.legacy.track_members(A, "verified") == {"u1"}


def test_a_failure_midway_through_a_cohort_removal_names_the_users_removed(world: OpenEdxWorld) -> None:
    seed_course(world)
    blue = world.legacy.create_cohort(A, "Blue")
    world.legacy.add_to_cohort(A, blue.cohort_id, ["u1", "u2", "u3"])
    world.fake.fail_next("DELETE", f"{COHORTS}{blue.cohort_id}/users/", after=1, status=503)
    error = broken(lambda: world.legacy.remove_from_cohort(A, blue.cohort_id, ["u1", "u2", "u3"]))
    assert (error.code, error.details) == ("legacy-unavailable", ["u1"])
    assert world.legacy.cohort_members(A, blue.cohort_id) == {"u2", "u3"}


def test_a_failure_on_a_later_cohort_chunk_names_the_users_of_the_earlier_ones(world: OpenEdxWorld) -> None:
    users = [f"user-{n:04d}" for n in range(1500)]
    seed_course(world, users=users)
    blue = world.legacy.create_cohort(A, "Blue", AssignmentType.RANDOM)
    world.fake.fail_next("POST", f"{COHORTS}{blue.cohort_id}/users", after=1)
    error = broken(lambda: world.legacy.add_to_cohort(A, blue.cohort_id, users))
    assert error.code == "legacy-unavailable"
    assert error.details == users[:1000]
