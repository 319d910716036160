"""User groups through the REST API and the ``courseinfra groups`` commands, on every backend: definitions
with ETag / If-Match, PUT and PATCH, members and history, preview, explain, refresh (on demand, all, on a
schedule) and members files."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from courseinfra.bootstrap import App
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.users import User
from courseinfra.services import content, enrolments
from courseinfra.settings import Settings
from tests.support.builders import load_json
from tests.support.cli import COURSEINFRA, Cli, fails, run_json, run_lines
from tests.support.http import ANY_VERSION, api_client, error_code, ok
from tests.support.servers import EXAMPLES

COURSE = "democourse"
AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

NORTH = {"type": "profile_field", "operator": "equals", "config": {"field": "district", "value": "north"}}
SOUTH = {"type": "profile_field", "operator": "equals", "config": {"field": "district", "value": "south"}}
ENROLLED = {"type": "course_enrolment", "operator": "is", "config": {}}
STAFF = {"type": "staff_status", "operator": "is_staff", "config": {}}


@pytest.fixture
def population(app: App) -> App:
    """Users and enrolments in batch ``B1`` of ``democourse``:

    ====  ========  =========  =====
    user  district  enrolled   staff
    ====  ========  =========  =====
    a1    north     audit
    a2    north     verified
    a3    south     audit
    a4    north
    a5                         yes
    a6    south
    ====  ========  =========  =====
    """
    content.put_hierarchy(load_json(EXAMPLES / "democourse.json"), app.uow_factory())
    content.publish(COURSE, app.uow_factory())
    enrolments.create_batch(CourseBatch("B1", COURSE, "Batch 1", AT), app.uow_factory())
    with app.uow_factory() as uow:
        uow.users.upsert_many(
            [
                User("a1", profile={"district": "north"}),
                User("a2", profile={"district": "north"}),
                User("a3", profile={"district": "south"}),
                User("a4", profile={"district": "north"}),
                User("a5", is_staff=True),
                User("a6", profile={"district": "south"}),
            ],
            AT,
        )
        uow.commit()
    for user, mode in (("a1", "audit"), ("a2", "verified"), ("a3", "audit")):
        enrolments.enrol(user, "B1", app.uow_factory(), at=AT, mode=mode)
    app.relay()
    return app


# --- the API -------------------------------------------------------------------------------------------


@pytest.fixture
def client(population: App) -> Iterator[TestClient]:
    with api_client(population) as client:
        yield client


def create(client: TestClient, group_id: str, **fields: Any) -> Any:
    body = {"group_id": group_id, "name": group_id.title(), "scope": "instance", **fields}
    response = client.post("/v1/groups", json=body)
    created = ok(response, 201)
    assert response.headers["etag"] == f'"{group_id}.{created["version"]}"'
    assert response.headers["location"] == f"/v1/groups/{group_id}"
    return created


def member_ids(client: TestClient, group_id: str) -> list[str]:
    return [m["user_id"] for m in ok(client.get(f"/v1/groups/{group_id}/members"))["members"]]


def test_criteria_types_are_every_registered_type_with_its_schema(client: TestClient, app: App) -> None:
    types = ok(client.get("/v1/criteria/types"))
    assert [t["type"] for t in types] == list(app.registry.types)
    assert len(types) >= 8
    profile = next(t for t in types if t["type"] == "profile_field")
    assert profile["operators"] == ["equals", "in", "exists"]
    assert profile["depends_on"] == ["profile"]
    assert set(profile["config_schema"]["properties"]) == {"field", "value", "values"}
    enrolment = next(t for t in types if t["type"] == "course_enrolment")
    assert enrolment["scopes"] == ["course", "instance", "organisation"]


def test_create_get_and_list(client: TestClient) -> None:
    north = create(client, "north", criteria=NORTH, include=["a5"], exclude=["a4"], description="North")
    assert north["refresh"] == {"joined": 3, "left": 0, "member_count": 3}
    assert (north["version"], north["member_count"], north["include"], north["exclude"]) == (
        1,
        3,
        ["a5"],
        ["a4"],
    )
    assert north["criteria"] == NORTH
    assert north["last_refreshed_at"] is not None
    assert member_ids(client, "north") == ["a1", "a2", "a5"]

    learners = create(client, "learners", scope=f"course:{COURSE}", criteria=ENROLLED)
    assert learners["scope"] == f"course:{COURSE}"
    assert learners["member_count"] == 3
    frozen = create(client, "frozen", criteria=STAFF, frozen=True)
    assert (frozen["refresh"], frozen["member_count"]) == ({"joined": 0, "left": 0, "member_count": 0}, 0)

    response = client.get("/v1/groups/north")
    got = ok(response)
    assert response.headers["etag"] == '"north.1"'
    assert got == {k: v for k, v in north.items() if k != "refresh"}
    assert error_code(client.get("/v1/groups/nobody"), 404) == "group-not-found"

    assert [g["group_id"] for g in ok(client.get("/v1/groups"))] == ["frozen", "learners", "north"]
    assert "include" not in ok(client.get("/v1/groups"))[0]
    in_course = ok(client.get("/v1/groups", params={"scope": f"course:{COURSE}"}))
    assert [g["group_id"] for g in in_course] == ["learners"]
    assert error_code(client.get("/v1/groups", params={"scope": "planet"}), 422) == "invalid-scope"

    again = {"group_id": "north", "name": "Other", "scope": "instance"}
    assert error_code(client.post("/v1/groups", json=again), 409) == "group-exists"
    same_name = {"group_id": "north2", "name": "North", "scope": "instance"}
    assert error_code(client.post("/v1/groups", json=same_name), 409) == "group-exists"
    bad = {"group_id": "g", "name": "G", "scope": "instance"}
    assert error_code(client.post("/v1/groups", json={**bad, "scope": "planet"}), 422) == "invalid-scope"
    unknown_type = {**bad, "criteria": {"type": "horoscope"}}
    assert error_code(client.post("/v1/groups", json=unknown_type), 422) == "invalid-criteria"
    no_course = {**bad, "criteria": ENROLLED}
    assert error_code(client.post("/v1/groups", json=no_course), 422) == "invalid-criteria"
    assert error_code(client.post("/v1/groups", json={**bad, "group_id": "-g"}), 422) == "invalid-group"
    both = {**bad, "include": ["a1"], "exclude": ["a1"]}
    assert error_code(client.post("/v1/groups", json=both), 422) == "invalid-group"
    assert error_code(client.post("/v1/groups", json={"group_id": "g"}), 422) == "invalid-request"
    assert [g["group_id"] for g in ok(client.get("/v1/groups"))] == ["frozen", "learners", "north"]


def test_patch_changes_only_what_is_given_under_if_match(client: TestClient) -> None:
    create(client, "north", criteria=NORTH, include=["a5"], description="North")
    response = client.patch(
        "/v1/groups/north", json={"name": "Northerners"}, headers={"If-Match": '"north.1"'}
    )
    patched = ok(response)
    assert response.headers["etag"] == '"north.2"'
    assert (patched["name"], patched["version"], patched["refresh"]) == ("Northerners", 2, None)
    assert (patched["description"], patched["criteria"], patched["include"]) == ("North", NORTH, ["a5"])
    assert member_ids(client, "north") == ["a1", "a2", "a4", "a5"]

    stale = client.patch("/v1/groups/north", json={"name": "Stale"}, headers={"If-Match": '"north.1"'})
    assert error_code(stale, 412) == "version-conflict"
    other = client.patch("/v1/groups/north", json={"name": "Other"}, headers={"If-Match": '"south.2"'})
    assert error_code(other, 412) == "version-conflict"
    weak = client.patch("/v1/groups/north", json={"name": "Weak"}, headers={"If-Match": 'W/"north.2"'})
    assert error_code(weak, 412) == "version-conflict"
    for malformed in ("north.2", '"north.2", "north.3"', '"north'):
        response = client.patch("/v1/groups/north", json={"name": "X"}, headers={"If-Match": malformed})
        assert error_code(response, 400) == "invalid-if-match"
    assert ok(client.get("/v1/groups/north"))["name"] == "Northerners", "nothing changed"

    # Without If-Match (or with *), no check.
    moved = ok(client.patch("/v1/groups/north", json={"criteria": SOUTH}, headers=ANY_VERSION))
    assert moved["refresh"] == {"joined": 2, "left": 3, "member_count": 3}
    assert member_ids(client, "north") == ["a3", "a5", "a6"]
    response = client.patch(
        "/v1/groups/north",
        content=json.dumps({"criteria": None, "enabled": False}),
        headers={"If-Match": "*", "content-type": "application/merge-patch+json"},
    )
    removed = ok(response)
    assert (removed["criteria"], removed["enabled"], removed["version"]) == (None, False, 4)
    assert removed["refresh"] == {"joined": 0, "left": 2, "member_count": 1}
    assert member_ids(client, "north") == ["a5"], "without criteria only the include list admits"
    reset = ok(
        client.patch("/v1/groups/north", json={"include": None, "description": None}, headers=ANY_VERSION)
    )
    assert (reset["include"], reset["description"], reset["member_count"]) == ([], "", 0)

    assert (
        error_code(client.patch("/v1/groups/north", json={"name": None}, headers=ANY_VERSION), 422)
        == "invalid-body"
    )
    assert (
        error_code(client.patch("/v1/groups/north", json={"colour": "red"}, headers=ANY_VERSION), 422)
        == "invalid-request"
    )
    bad_criteria = client.patch("/v1/groups/north", json={"criteria": {"or": []}}, headers=ANY_VERSION)
    assert error_code(bad_criteria, 422) == "invalid-criteria"
    assert (
        error_code(client.patch("/v1/groups/nobody", json={"name": "x"}, headers=ANY_VERSION), 404)
        == "group-not-found"
    )


def test_put_replaces_the_definition(client: TestClient) -> None:
    create(client, "north", criteria=NORTH, include=["a5"], exclude=["a1"], description="North", frozen=False)
    response = client.put(
        "/v1/groups/north",
        json={"name": "Learners", "scope": f"course:{COURSE}", "criteria": ENROLLED},
        headers={"If-Match": '"north.1"'},
    )
    replaced = ok(response)
    assert response.headers["etag"] == '"north.2"'
    assert (replaced["name"], replaced["scope"], replaced["criteria"]) == (
        "Learners",
        f"course:{COURSE}",
        ENROLLED,
    )
    assert (replaced["description"], replaced["include"], replaced["exclude"]) == ("", [], [])
    assert (replaced["enabled"], replaced["frozen"]) == (True, False)
    assert replaced["refresh"] == {"joined": 2, "left": 2, "member_count": 3}
    assert member_ids(client, "north") == ["a1", "a2", "a3"]

    stale = client.put(
        "/v1/groups/north", json={"name": "N", "scope": "instance"}, headers={"If-Match": '"north.1"'}
    )
    assert error_code(stale, 412) == "version-conflict"
    assert (
        error_code(client.put("/v1/groups/north", json={"scope": "instance"}, headers=ANY_VERSION), 422)
        == "invalid-request"
    )
    no_course = client.put(
        "/v1/groups/north", json={"name": "N", "scope": "instance", "criteria": ENROLLED}, headers=ANY_VERSION
    )
    assert error_code(no_course, 422) == "invalid-criteria"
    frozen = ok(
        client.put(
            "/v1/groups/north", json={"name": "N", "scope": "instance", "frozen": True}, headers=ANY_VERSION
        )
    )
    assert (frozen["refresh"], frozen["member_count"], frozen["version"]) == (None, 3, 3)
    assert member_ids(client, "north") == ["a1", "a2", "a3"], "a frozen group keeps its members"
    unfrozen = ok(
        client.put("/v1/groups/north", json={"name": "N", "scope": "instance"}, headers=ANY_VERSION)
    )
    assert unfrozen["refresh"] == {"joined": 0, "left": 3, "member_count": 0}


def test_delete_honours_if_match(client: TestClient) -> None:
    create(client, "north", criteria=NORTH)
    ok(client.patch("/v1/groups/north", json={"description": "d"}, headers=ANY_VERSION))
    assert error_code(client.delete("/v1/groups/north", headers={"If-Match": '"north.1"'}), 412) == (
        "version-conflict"
    )
    assert error_code(client.delete("/v1/groups/north", headers={"If-Match": "2"}), 400) == "invalid-if-match"
    response = client.delete("/v1/groups/north", headers={"If-Match": '"north.2"'})
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert error_code(client.get("/v1/groups/north"), 404) == "group-not-found"
    assert error_code(client.delete("/v1/groups/north", headers=ANY_VERSION), 404) == "group-not-found"
    assert error_code(client.get("/v1/groups/north/members"), 404) == "group-not-found"
    create(client, "north", criteria=NORTH)
    assert client.delete("/v1/groups/north", headers=ANY_VERSION).status_code == 204, (
        "without If-Match, no check"
    )


def test_members_pages_and_history_with_reasons(client: TestClient) -> None:
    create(client, "north", criteria=NORTH, include=["a5"])
    first = ok(client.get("/v1/groups/north/members", params={"limit": 2}))
    assert [m["user_id"] for m in first["members"]] == ["a1", "a2"]
    assert first["next_after"] == "a2"
    assert {m["reason"] for m in first["members"]} == {"criteria"}
    assert all(m["joined_at"] for m in first["members"])
    second = ok(client.get("/v1/groups/north/members", params={"limit": 2, "after": "a2"}))
    assert [(m["user_id"], m["reason"]) for m in second["members"]] == [
        ("a4", "criteria"),
        ("a5", "included"),
    ]
    assert second["next_after"] == "a5"
    last = ok(client.get("/v1/groups/north/members", params={"limit": 2, "after": "a5"}))
    assert last == {"members": [], "next_after": None}
    assert ok(client.get("/v1/groups/north/members"))["next_after"] is None
    assert error_code(client.get("/v1/groups/north/members", params={"limit": 0}), 422) == "invalid-request"

    ok(client.patch("/v1/groups/north", json={"criteria": SOUTH, "exclude": ["a3"]}, headers=ANY_VERSION))
    history = ok(client.get("/v1/groups/north/history"))
    assert history["next_after"] is None
    changes = [(c["change"], c["user_id"], c["reason"]) for c in history["history"]]
    assert changes[:4] == [
        ("joined", "a1", "criteria"),
        ("joined", "a2", "criteria"),
        ("joined", "a4", "criteria"),
        ("joined", "a5", "included"),
    ]
    assert sorted(changes[4:]) == [
        ("joined", "a6", "criteria"),
        ("left", "a1", "not-matched"),
        ("left", "a2", "not-matched"),
        ("left", "a4", "not-matched"),
    ]
    assert {c["at"] for c in history["history"][4:]} == {history["history"][4]["at"]}
    assert member_ids(client, "north") == ["a5", "a6"], "a3 is excluded"

    ok(client.patch("/v1/groups/north", json={"exclude": ["a6"]}, headers=ANY_VERSION))
    mine = ok(client.get("/v1/groups/north/history", params={"user_id": "a6"}))["history"]
    assert [(c["change"], c["reason"]) for c in mine] == [("joined", "criteria"), ("left", "excluded")]
    page = ok(client.get("/v1/groups/north/history", params={"limit": 3}))
    assert len(page["history"]) == 3
    rest = ok(client.get("/v1/groups/north/history", params={"after": page["next_after"]}))
    assert [c["id"] for c in page["history"] + rest["history"]] == [
        c["id"] for c in ok(client.get("/v1/groups/north/history"))["history"]
    ]
    assert error_code(client.get("/v1/groups/nobody/history"), 404) == "group-not-found"


def test_preview_writes_nothing(client: TestClient) -> None:
    create(client, "north", criteria=NORTH)
    before = ok(client.get("/v1/groups/north"))
    history = ok(client.get("/v1/groups/north/history"))

    preview = ok(client.post("/v1/groups/north/preview", json={"criteria": SOUTH}))
    assert preview == {
        "joined": 2,
        "left": 3,
        "member_count": 2,
        "joined_ids": ["a3", "a6"],
        "left_ids": ["a1", "a2", "a4"],
    }
    sampled = ok(client.post("/v1/groups/north/preview", params={"sample": 1}, json={"criteria": SOUTH}))
    assert (sampled["joined_ids"], sampled["left_ids"], sampled["left"]) == (["a3"], ["a1"], 3)
    stored = ok(client.post("/v1/groups/north/preview"))
    assert stored == {"joined": 0, "left": 0, "member_count": 3, "joined_ids": [], "left_ids": []}
    assert ok(client.post("/v1/groups/north/preview", json={})) == stored
    without = ok(client.post("/v1/groups/north/preview", json={"criteria": None}))
    assert (without["left"], without["member_count"]) == (3, 0)
    bad = client.post(
        "/v1/groups/north/preview", json={"criteria": {"type": "staff_status", "operator": "x"}}
    )
    assert error_code(bad, 422) == "invalid-criteria"
    assert error_code(client.post("/v1/groups/nobody/preview"), 404) == "group-not-found"

    assert member_ids(client, "north") == ["a1", "a2", "a4"]
    assert ok(client.get("/v1/groups/north")) == before
    assert ok(client.get("/v1/groups/north/history")) == history


def test_users_unknown_to_the_directory_are_refused_as_a_members_import_refuses_them(
    client: TestClient,
) -> None:
    """Issue 14: create and update took include and exclude ids the directory does not have (the members
    import refuses them): now refused alike, every unknown id listed, nothing changed."""
    body = {"group_id": "north", "name": "North", "scope": "instance", "criteria": NORTH}
    refused = client.post("/v1/groups", json={**body, "include": ["a5", "ghost"], "exclude": ["nobody"]})
    assert error_code(refused, 422) == "invalid-members-file"
    assert refused.json()["error"]["details"] == [
        {"field": "include", "user_id": "ghost", "reason": "unknown user ghost"},
        {"field": "exclude", "user_id": "nobody", "reason": "unknown user nobody"},
    ]
    assert "ghost" in refused.json()["error"]["message"]
    assert error_code(client.get("/v1/groups/north"), 404) == "group-not-found"

    create(client, "north", criteria=NORTH, include=["a5"])
    patch = client.patch("/v1/groups/north", json={"include": ["a5", "ghost"]}, headers=ANY_VERSION)
    assert error_code(patch, 422) == "invalid-members-file"
    definition = {k: v for k, v in body.items() if k != "group_id"}
    put = client.put("/v1/groups/north", json={**definition, "exclude": ["ghost"]}, headers=ANY_VERSION)
    assert error_code(put, 422) == "invalid-members-file"
    assert [d["user_id"] for d in put.json()["error"]["details"]] == ["ghost"]
    group = ok(client.get("/v1/groups/north"))
    assert (group["version"], group["include"], group["exclude"]) == (1, ["a5"], [])
    assert member_ids(client, "north") == ["a1", "a2", "a4", "a5"]
    documented = client.get("/openapi.json").json()["paths"]["/v1/groups"]["post"]["responses"]["422"]
    assert "invalid-members-file" in documented["description"]


def test_a_member_added_to_the_include_list_is_included_and_the_history_says_so(client: TestClient) -> None:
    """Issue 14: a1, a member by the criteria, stayed ``criteria`` once included, with no history."""
    create(client, "north", criteria=NORTH)
    included = ok(client.patch("/v1/groups/north", json={"include": ["a1"]}, headers=ANY_VERSION))
    assert included["refresh"] == {"joined": 0, "left": 0, "member_count": 3}
    reasons = {m["user_id"]: m["reason"] for m in ok(client.get("/v1/groups/north/members"))["members"]}
    assert reasons == {"a1": "included", "a2": "criteria", "a4": "criteria"}
    ok(client.patch("/v1/groups/north", json={"include": []}, headers=ANY_VERSION))
    members = ok(client.get("/v1/groups/north/members"))["members"]
    assert {m["user_id"]: m["reason"] for m in members} == {
        "a1": "criteria",
        "a2": "criteria",
        "a4": "criteria",
    }
    a1 = ok(client.get("/v1/groups/north/history", params={"user_id": "a1"}))["history"]
    assert [(c["change"], c["reason"]) for c in a1] == [
        ("joined", "criteria"),
        ("reason", "included"),
        ("reason", "criteria"),
    ]
    assert members[0]["joined_at"] == a1[0]["at"], "a1 never left: it keeps the time it joined"


def test_without_pii_an_explanation_masks_the_profile_values_it_read(
    client: TestClient, population: App
) -> None:
    """A value read of the user's profile is personal data: ``***`` for a token without ``pii``; what
    it is compared with is the group's definition and stays; a value that is not of the profile stays."""
    create(client, "north", criteria={"and": [NORTH, {"not": STAFF}]})
    with api_client(population, role="reader", pii=False) as reader:
        explained = ok(reader.get("/v1/groups/north/explain/a3"))["criteria"]
    assert explained["and"][0] == {**NORTH, "holds": False, "value": "***", "compared_to": "north"}
    assert explained["and"][1]["not"]["value"] is False
    assert ok(client.get("/v1/groups/north/explain/a3"))["criteria"]["and"][0]["value"] == "south"


def test_explain_a_member_and_a_non_member(client: TestClient) -> None:
    both = {"and": [NORTH, {"not": STAFF}]}
    create(client, "north", criteria=both, exclude=["a4"])
    member = ok(client.get("/v1/groups/north/explain/a1"))
    assert (member["member"], member["would_be_member"], member["reason"]) == (True, True, "criteria")
    assert member["criteria"] == {
        "and": [
            {**NORTH, "holds": True, "value": "north", "compared_to": "north"},
            {"not": {**STAFF, "holds": False, "value": False, "compared_to": None}, "holds": True},
        ],
        "holds": True,
    }
    outsider = ok(client.get("/v1/groups/north/explain/a3"))
    assert (outsider["member"], outsider["would_be_member"], outsider["reason"]) == (
        False,
        False,
        "not-matched",
    )
    assert outsider["criteria"]["holds"] is False
    # Not only that the criterion fails: what a3 has (south) beside what it is compared with (north).
    assert outsider["criteria"]["and"][0] == {
        **NORTH,
        "holds": False,
        "value": "south",
        "compared_to": "north",
    }
    no_district = ok(client.get("/v1/groups/north/explain/a5"))["criteria"]["and"][0]
    assert (no_district["holds"], no_district["value"], no_district["compared_to"]) == (False, None, "north")
    excluded = ok(client.get("/v1/groups/north/explain/a4"))
    assert (excluded["member"], excluded["reason"], excluded["criteria"]["holds"]) == (
        False,
        "excluded",
        True,
    )
    unknown = ok(client.get("/v1/groups/north/explain/nobody"))
    assert (unknown["member"], unknown["reason"], unknown["criteria"], unknown["frozen"]) == (
        False,
        "unknown-user",
        None,
        False,
    )
    schema = client.get("/openapi.json").json()
    explain = schema["paths"]["/v1/groups/{group_id}/explain/{user_id}"]["get"]
    documented = explain["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    explain_out = schema["components"]["schemas"][documented.rsplit("/", 1)[1]]
    assert (
        set(explain_out["required"])
        == set(member)
        == {
            "group_id",
            "user_id",
            "member",
            "would_be_member",
            "reason",
            "frozen",
            "criteria",
        }
    )
    assert "compared_to" in explain_out["properties"]["criteria"]["description"]
    assert error_code(client.get("/v1/groups/nobody/explain/a1"), 404) == "group-not-found"


def test_refresh_one_and_all_and_a_frozen_group_is_refused(client: TestClient, app: App) -> None:
    create(client, "north", criteria=NORTH)
    create(client, "staff", criteria=STAFF, enabled=False)
    create(client, "frozen", criteria=NORTH, frozen=True)
    with app.uow_factory() as uow:
        uow.users.upsert_many([User("a7", profile={"district": "north"}), User("a8", is_staff=True)], AT)
        uow.commit()

    refreshed = ok(client.post("/v1/groups/north/refresh"))
    assert refreshed == {"group_id": "north", "joined": 1, "left": 0, "member_count": 4}
    assert ok(client.get("/v1/groups/north"))["version"] == 1, "a refresh does not change the version"
    assert ok(client.post("/v1/groups/north/refresh"))["joined"] == 0
    assert error_code(client.post("/v1/groups/frozen/refresh"), 409) == "group-frozen"
    assert ok(client.get("/v1/groups/frozen"))["member_count"] == 0
    assert error_code(client.post("/v1/groups/nobody/refresh"), 404) == "group-not-found"

    # Refresh all: enabled, unfrozen groups only; a disabled group is refreshed on demand.
    assert ok(client.post("/v1/groups/refresh")) == {"north": {"joined": 0, "left": 0, "member_count": 4}}
    assert ok(client.post("/v1/groups/staff/refresh"))["joined"] == 1
    assert member_ids(client, "staff") == ["a5", "a8"]


def test_import_members(client: TestClient) -> None:
    create(client, "north", criteria=NORTH, exclude=["a2"])
    before = ok(client.get("/v1/groups/north"))
    bad_csv = "user_id,action\na3,include\nnobody,include\na6,exclude\na3,exclude\n"
    response = client.post(
        "/v1/groups/north/members/import", content=bad_csv, headers={"content-type": "text/csv"}
    )
    assert error_code(response, 422) == "invalid-members-file"
    assert response.json()["error"]["details"] == [
        {"line": 3, "reason": "unknown user nobody"},
        {"line": 5, "reason": "user a3 is already on line 2"},
    ]
    assert ok(client.get("/v1/groups/north")) == before, "nothing changed"
    assert member_ids(client, "north") == ["a1", "a4"]

    good = "user_id,action\na3,include\na2\na4,exclude\n"
    response = client.post(
        "/v1/groups/north/members/import",
        content=good,
        headers={"content-type": "text/csv; charset=utf-8", "If-Match": '"north.1"'},
    )
    imported = ok(response)
    assert response.headers["etag"] == '"north.2"'
    assert imported == {
        "group_id": "north",
        "version": 2,
        "include": 2,
        "exclude": 1,
        "refresh": {"joined": 2, "left": 1, "member_count": 3},
    }
    group = ok(client.get("/v1/groups/north"))
    assert (group["include"], group["exclude"]) == (["a2", "a3"], ["a4"])
    assert member_ids(client, "north") == ["a1", "a2", "a3"]

    stale = client.post(
        "/v1/groups/north/members/import",
        content=good,
        headers={"content-type": "text/csv", "If-Match": '"north.1"'},
    )
    assert error_code(stale, 412) == "version-conflict"
    no_column = client.post(
        "/v1/groups/north/members/import", content="id\na1\n", headers={"content-type": "text/csv"}
    )
    assert error_code(no_column, 422) == "invalid-members-file"
    assert no_column.json()["error"]["details"] == [{"line": 1, "reason": "no user_id column"}]
    as_json = client.post("/v1/groups/north/members/import", json=[{"user_id": "a1"}])
    assert error_code(as_json, 415) == "unsupported-media-type"
    missing = client.post(
        "/v1/groups/nobody/members/import", content=good, headers={"content-type": "text/csv"}
    )
    assert error_code(missing, 404) == "group-not-found"


def test_the_openapi_document_lists_the_group_routes(client: TestClient) -> None:
    paths = ok(client.get("/openapi.json"))["paths"]
    assert {
        "/v1/criteria/types",
        "/v1/groups",
        "/v1/groups/{group_id}",
        "/v1/groups/{group_id}/members",
        "/v1/groups/{group_id}/history",
        "/v1/groups/{group_id}/preview",
        "/v1/groups/{group_id}/explain/{user_id}",
        "/v1/groups/refresh",
        "/v1/groups/{group_id}/refresh",
        "/v1/groups/{group_id}/members/import",
    } <= set(paths)
    assert set(paths["/v1/groups/{group_id}"]) == {"get", "put", "patch", "delete"}
    assert paths["/v1/groups"]["post"]["tags"] == ["groups"]


# --- the command line ----------------------------------------------------------------------------------


@pytest.fixture
def cli(settings: Settings, population: App) -> Cli:
    return Cli(settings)


def write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def test_the_command_line_refuses_unknown_users_in_one_line(cli: Cli) -> None:
    create = ("groups", "create", "north", "--name", "North", "--scope", "instance")
    error = fails(cli, *create, "--include", "a5", "--include", "ghost")
    assert error == (
        "courseinfra: invalid-members-file: 1 user is not in the user directory: include ghost; "
        "nothing was changed\n"
    )
    run_json(cli, *create, "--include", "a5")
    error = fails(cli, "groups", "update", "north", "--exclude", "nobody")
    assert error.startswith("courseinfra: invalid-members-file: 1 user is not in the user directory: exclude")
    assert error.count("\n") == 1
    assert run_json(cli, "groups", "get", "north")["version"] == 1


@pytest.mark.slow
def test_groups_through_the_command_line(cli: Cli, tmp_path: Path) -> None:
    north_file = write_json(tmp_path / "north.json", NORTH)
    created = run_json(
        cli,
        *("groups", "create", "north", "--name", "North", "--scope", "instance"),
        *("--criteria", north_file, "--include", "a5", "--exclude", "a4", "--description", "d"),
    )
    assert (created["version"], created["include"], created["exclude"], created["criteria"]) == (
        1,
        ["a5"],
        ["a4"],
        NORTH,
    )
    assert created["refresh"] == {"joined": 3, "left": 0, "member_count": 3}
    from_stdin = cli(
        *("groups", "create", "learners", "--name", "Learners", "--scope", f"course:{COURSE}"),
        *("--criteria", "-", "--disabled"),
        stdin=json.dumps(ENROLLED),
    )
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert json.loads(from_stdin.stdout)["enabled"] is False
    frozen = run_json(cli, "groups", "create", "frozen", "--name", "F", "--scope", "instance", "--frozen")
    assert (frozen["frozen"], frozen["member_count"]) == (True, 0)
    assert fails(cli, "groups", "create", "north", "--name", "N2", "--scope", "instance").startswith(
        "courseinfra: group-exists: "
    )
    assert fails(cli, "groups", "create", "g", "--name", "G", "--scope", "planet").startswith(
        "courseinfra: invalid-scope: "
    )

    assert run_json(cli, "groups", "get", "north") == {k: v for k, v in created.items() if k != "refresh"}
    assert fails(cli, "groups", "get", "nobody") == "courseinfra: group-not-found: no user group nobody\n"
    assert [g["group_id"] for g in run_lines(cli, "groups", "list")] == ["frozen", "learners", "north"]
    assert [g["group_id"] for g in run_lines(cli, "groups", "list", "--scope", "instance")] == [
        "frozen",
        "north",
    ]

    renamed = run_json(cli, "groups", "update", "north", "--name", "Northerners", "--if-version", "1")
    assert (renamed["name"], renamed["version"], renamed["refresh"], renamed["criteria"]) == (
        "Northerners",
        2,
        None,
        NORTH,
    )
    stale = fails(cli, "groups", "update", "north", "--name", "Stale", "--if-version", "1")
    assert stale.startswith("courseinfra: version-conflict: ")
    assert "nothing to change" in fails(cli, "groups", "update", "north", exit_code=2)
    south = run_json(
        cli, "groups", "update", "north", "--criteria", write_json(tmp_path / "s.json", SOUTH), "--disable"
    )
    assert (south["enabled"], south["refresh"]) == (False, {"joined": 2, "left": 2, "member_count": 3})
    assert run_json(cli, "groups", "update", "north", "--enable")["enabled"] is True

    members = cli("groups", "members", "north", "--limit", "2")
    assert members.returncode == 0, members.stderr
    assert [json.loads(line)["user_id"] for line in members.stdout.splitlines()] == ["a3", "a5"]
    assert "--after a5" in members.stderr
    rest = run_lines(cli, "groups", "members", "north", "--after", "a5")
    assert [(m["user_id"], m["reason"]) for m in rest] == [("a6", "criteria")]

    history = run_lines(cli, "groups", "history", "north", "--user", "a1")
    assert [(c["change"], c["reason"]) for c in history] == [("joined", "criteria"), ("left", "not-matched")]
    assert len(run_lines(cli, "groups", "history", "north")) == 7

    preview = run_json(cli, "groups", "preview", "north", "--criteria", north_file)
    assert (preview["joined_ids"], preview["left_ids"]) == (["a1", "a2"], ["a3", "a6"])
    assert run_json(cli, "groups", "preview", "north")["joined"] == 0
    assert [m["user_id"] for m in run_lines(cli, "groups", "members", "north")] == ["a3", "a5", "a6"]

    explained = run_json(cli, "groups", "explain", "north", "a3")
    assert (explained["member"], explained["reason"]) == (True, "criteria")
    assert run_json(cli, "groups", "explain", "north", "a1")["reason"] == "not-matched"

    assert run_json(cli, "groups", "refresh", "north") == {
        "group_id": "north",
        "joined": 0,
        "left": 0,
        "member_count": 3,
    }
    assert fails(cli, "groups", "refresh", "frozen").startswith("courseinfra: group-frozen: ")
    assert run_json(cli, "groups", "refresh", "--all") == {
        "north": {"joined": 0, "left": 0, "member_count": 3}
    }
    assert "give either" in fails(cli, "groups", "refresh", exit_code=2)
    assert "--all" in fails(cli, "groups", "refresh", "north", "--every", "5", exit_code=2)

    bad_file = tmp_path / "bad.csv"
    bad_file.write_text("user_id,action\na1,include\nnobody,include\na2,maybe\n", encoding="utf-8")
    bad = fails(cli, "groups", "import-members", "north", str(bad_file))
    assert bad.splitlines() == [
        "line 3: unknown user nobody",
        "line 4: action 'maybe': expected include or exclude",
        f"courseinfra: 2 bad row(s) in {bad_file}: nothing was imported",
    ]
    assert run_json(cli, "groups", "get", "north")["include"] == ["a5"]
    good_file = tmp_path / "good.csv"
    good_file.write_text("user_id\na1\n", encoding="utf-8")
    imported = run_json(cli, "groups", "import-members", "north", str(good_file), "--if-version", "4")
    assert imported == {
        "group_id": "north",
        "version": 5,
        "include": 2,
        "exclude": 1,
        "refresh": {"joined": 1, "left": 0, "member_count": 4},
    }

    types = run_json(cli, "groups", "criteria-types")
    assert "profile_field" in [t["type"] for t in types]
    assert all("config_schema" in t for t in types)

    assert fails(cli, "groups", "delete", "north", "--if-version", "1").startswith(
        "courseinfra: version-conflict: "
    )
    assert run_json(cli, "groups", "delete", "north", "--if-version", "5") == {
        "group_id": "north",
        "deleted": True,
        "outcome": "deleted",
    }
    assert fails(cli, "groups", "get", "north").startswith("courseinfra: group-not-found")


def test_scheduled_refresh_runs_until_interrupted(cli: Cli, app: App) -> None:
    assert (
        cli(
            "groups",
            "create",
            "north",
            "--name",
            "N",
            "--scope",
            "instance",
            "--criteria",
            "-",
            stdin=json.dumps(NORTH),
        ).returncode
        == 0
    )
    with app.uow_factory() as uow:
        uow.users.upsert_many([User("a7", profile={"district": "north"})], AT)
        uow.commit()
    process = subprocess.Popen(
        [*COURSEINFRA, "groups", "refresh", "--all", "--every", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        second = json.loads(process.stdout.readline())
        process.send_signal(signal.SIGTERM)
        out, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, errors
    assert first["groups"] == {"north": {"joined": 1, "left": 0, "member_count": 4}}
    assert second["groups"] == {"north": {"joined": 0, "left": 0, "member_count": 4}}
    assert first["at"] < second["at"]
    history = run_lines(cli, "groups", "history", "north", "--user", "a7")
    assert [(c["change"], c["reason"]) for c in history] == [("joined", "criteria")]
    assert all(json.loads(line)["groups"] for line in out.splitlines())


def test_a_patch_that_changes_nothing_keeps_the_version(app: App) -> None:
    with api_client(app) as client:
        created = ok(
            client.post("/v1/groups", json={"group_id": "same", "name": "Same", "scope": "instance"}), 201
        )
        for body in ({}, {"name": "Same"}, {"include": [], "description": ""}):
            answer = client.patch(
                "/v1/groups/same", json=body, headers={"If-Match": f'"same.{created["version"]}"'}
            )
            assert ok(answer)["version"] == created["version"], body
            assert answer.headers["etag"] == f'"same.{created["version"]}"'
        renamed = ok(client.patch("/v1/groups/same", json={"name": "Other"}, headers=ANY_VERSION))
        assert renamed["version"] == created["version"] + 1
