"""The console's user groups page in process, on every backend: the groups (by course, paged), one group
with its criteria, members and history, explaining a learner (the value read beside the value compared,
a profile value masked without ``pii``), previewing other criteria without writing, the on-demand
refresh; a read-only role sees no action and is refused them, course staff see and reach only their
courses' groups, and bad input is a page with a message."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from courseinfra.bootstrap import App
from courseinfra.domain.users import User
from courseinfra.services import content
from courseinfra.services.groups import GroupDefinition
from tests.support.builders import load_json
from tests.support.console import console_client, csrf_in, message_of
from tests.support.servers import EXAMPLES

COURSE = "democourse"
AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
NORTH = {"type": "profile_field", "operator": "equals", "config": {"field": "district", "value": "north"}}
SOUTH = {"type": "profile_field", "operator": "equals", "config": {"field": "district", "value": "south"}}
STAFF = {"type": "staff_status", "operator": "is_staff", "config": {}}
#: Who lives where: a4 is excluded from ``north`` and a5 included in it.
DISTRICTS = {"a1": "north", "a2": "north", "a3": "south", "a4": "north", "a6": "south"}


@pytest.fixture
def population(app: App) -> App:
    """The course ``democourse`` stored, users a1-a6 (a5 staff, without a district), and the groups
    ``north`` (instance: NORTH and not staff, include a5, exclude a4) and ``course-south`` (the
    course's: SOUTH)."""
    content.put_hierarchy(load_json(EXAMPLES / "democourse.json"), app.uow_factory())
    with app.uow_factory() as uow:
        users = [User(user, profile={"district": district}) for user, district in DISTRICTS.items()]
        uow.users.upsert_many([*users, User("a5", is_staff=True)], AT)
        uow.commit()
    create(app, "north", "instance", {"and": [NORTH, {"not": STAFF}]}, include=("a5",), exclude=("a4",))
    create(app, "course-south", f"course:{COURSE}", SOUTH)
    return app


def create(app: App, group_id: str, scope: str, criteria: Any, **fields: Any) -> None:
    definition = GroupDefinition(name=group_id.title(), scope=scope, criteria=criteria, **fields)
    app.groups.create_group(group_id, definition)


def member_ids(app: App, group_id: str) -> list[str]:
    return [member.user_id for member in app.groups.members(group_id, limit=1000)]


def rows(html: str, table: str) -> list[str]:
    """The text of each body row of the table ``table``, tags removed."""
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, html
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in body.group(1).split("</tr>")[:-1]
    ]


def test_the_list_filters_by_course_and_opens_a_group_with_its_criteria_members_and_history(
    population: App,
) -> None:
    client = console_client(population, "operator")
    home = client.get("/console/")
    assert 'href="/console/groups"' in home.text
    listed = client.get("/console/groups")
    assert listed.status_code == 200
    assert [row.split()[0] for row in rows(listed.text, "groups")] == ["course-south", "north"]
    by_course = client.get("/console/groups", params={"course": COURSE})
    assert [row.split()[0] for row in rows(by_course.text, "groups")] == ["course-south"]
    assert "No group of this course" in client.get("/console/groups", params={"course": "other"}).text

    page = client.get("/console/groups/north")
    assert page.status_code == 200
    assert "&#34;value&#34;: &#34;north&#34;" in page.text  # the criteria as JSON (escaped)
    assert "Include list: 1 user(s): a5" in page.text
    assert "Exclude list: 1 user(s): a4" in page.text
    members = rows(page.text, "members")
    assert [row.split()[0] for row in members] == ["a1", "a2", "a5"]
    assert members[2].endswith("included")
    history = rows(page.text, "history")
    assert len(history) == 3
    assert all(" joined " in row for row in history)
    assert 'id="refresh"' in page.text
    assert 'id="preview"' in page.text
    assert 'id="explain"' in page.text


def test_members_and_groups_are_paged(app: App) -> None:
    with app.uow_factory() as uow:
        uow.users.upsert_many([User(f"u{n:03d}", is_staff=True) for n in range(53)], AT)
        uow.commit()
    create(app, "staff", "instance", STAFF)
    client = console_client(app)
    first = client.get("/console/groups/staff")
    assert len(rows(first.text, "members")) == 50
    following = re.search(r'href="(/console/groups/staff\?members_after=u049)"', first.text)
    assert following, first.text
    second = client.get(following.group(1))
    assert [row.split()[0] for row in rows(second.text, "members")] == ["u050", "u051", "u052"]
    assert "Next members" not in second.text
    assert len(rows(first.text, "history")) == 50
    changes = re.search(r'href="(/console/groups/staff\?history_after=\d+)">Next changes', first.text)
    assert changes, first.text
    assert len(rows(client.get(changes.group(1)).text, "history")) == 3


def test_explain_shows_the_reason_and_each_value_read_beside_the_value_compared(population: App) -> None:
    client = console_client(population, "operator", pii=True)
    outsider = client.get("/console/groups/north/explain", params={"user": "a3"})
    assert outsider.status_code == 200
    assert re.search(r'id="member">no<', outsider.text)
    assert re.search(r'id="would-be-member">not a member<', outsider.text)
    assert "<code>not-matched</code> (the criteria do not hold)" in outsider.text
    # Not only that the criterion fails: what a3 has (south) beside what it is compared with (north).
    profile = re.search(r'data-type="profile_field">(.*?)</li>', outsider.text, re.S)
    assert profile
    assert "does not hold" in profile.group(1)
    assert re.search(r'class="value">"south"<', profile.group(1))
    assert re.search(r'class="compared">"north"<', profile.group(1))
    staff = re.search(r'data-type="staff_status">(.*?)</li>', outsider.text, re.S)
    assert staff
    assert re.search(r'class="value">false<', staff.group(1))

    member = client.get("/console/groups/north/explain", params={"user": "a1"})
    assert re.search(r'id="member">yes<', member.text)
    assert "<code>criteria</code>" in member.text
    excluded = client.get("/console/groups/north/explain", params={"user": "a4"})
    assert "<code>excluded</code>" in excluded.text
    unknown = client.get("/console/groups/north/explain", params={"user": "nobody"})
    assert "<code>unknown-user</code> (not in the user directory)" in unknown.text
    assert "criteria-explained" not in unknown.text
    assert 'id="explained"' not in client.get("/console/groups/north/explain").text  # the form alone


def test_without_pii_an_explanation_masks_the_profile_values_it_read(population: App) -> None:
    client = console_client(population, "reader", pii=False)
    page = client.get("/console/groups/north/explain", params={"user": "a3"})
    profile = re.search(r'data-type="profile_field">(.*?)</li>', page.text, re.S)
    assert profile
    assert "south" not in profile.group(1)
    assert re.search(r'class="value">"\*\*\*"<', profile.group(1))
    assert re.search(r'class="compared">"north"<', profile.group(1)), "the group's own value stays"
    staff = re.search(r'data-type="staff_status">(.*?)</li>', page.text, re.S)
    assert staff
    assert re.search(r'class="value">false<', staff.group(1)), "not personal data: shown"
    assert "<code>not-matched</code>" in page.text


def test_preview_shows_who_would_join_and_leave_and_changes_nothing(population: App) -> None:
    client = console_client(population, "operator")
    page = client.get("/console/groups/north")
    csrf = csrf_in(page.text)
    version = population.groups.get_group("north").group.version
    answer = client.post(
        "/console/groups/north/preview", data={"csrf_token": csrf, "criteria": json.dumps(SOUTH)}
    )
    assert answer.status_code == 200, answer.text
    assert re.search(r'id="joined">2<', answer.text)
    assert re.search(r'id="left">2<', answer.text)
    assert re.search(r'id="joined-ids">a3, a6<', answer.text)
    assert re.search(r'id="left-ids">a1, a2<', answer.text)
    assert re.search(r'id="member-after">3<', answer.text)  # a5 stays: the include list
    assert member_ids(population, "north") == ["a1", "a2", "a5"], "a preview writes nothing"
    assert population.groups.get_group("north").group.version == version
    assert len(population.groups.history("north")) == 3

    stored = client.post("/console/groups/north/preview", data={"csrf_token": csrf, "criteria": " "})
    assert re.search(r'id="joined">0<', stored.text)
    none = client.post("/console/groups/north/preview", data={"csrf_token": csrf, "criteria": "null"})
    assert re.search(r'id="left-ids">a1, a2<', none.text), "without criteria only the include list stays"


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ("{not json", "criteria: not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"type": "no_such_type", "operator": "is", "config": {}}', "no_such_type"),
        ("x" * 60_001, "at most 60000 characters"),
    ],
)
def test_a_bad_criteria_document_is_a_message_beside_the_form(
    population: App, criteria: str, message: str
) -> None:
    client = console_client(population, "operator")
    csrf = csrf_in(client.get("/console/groups/north").text)
    answer = client.post("/console/groups/north/preview", data={"csrf_token": csrf, "criteria": criteria})
    assert answer.status_code == 422
    assert message in message_of(answer.text)
    assert "Traceback" not in answer.text
    assert 'id="criteria"' in answer.text, "the form stays, to correct it"
    if len(criteria) < 100:
        assert criteria.replace('"', "&#34;") in answer.text


def test_refresh_applies_the_difference_and_a_frozen_group_has_no_button(population: App) -> None:
    with population.uow_factory() as uow:
        uow.users.upsert_many([User("a7", profile={"district": "north"})], AT)
        uow.commit()
    client = console_client(population, "operator")
    page = client.get("/console/groups/north")
    answer = client.post("/console/groups/north/refresh", data={"csrf_token": csrf_in(page.text)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/groups/north?joined=1&left=0"
    after = client.get(answer.headers["location"])
    assert "Refreshed: 1 joined, 0 left." in after.text
    assert member_ids(population, "north") == ["a1", "a2", "a5", "a7"]

    create(population, "frozen", "instance", NORTH, frozen=True)
    frozen = client.get("/console/groups/frozen")
    assert 'id="refresh"' not in frozen.text
    refused = client.post("/console/groups/frozen/refresh", data={"csrf_token": csrf_in(frozen.text)})
    assert refused.status_code == 409
    assert "frozen" in message_of(refused.text)


def test_a_reader_sees_no_action_and_is_refused_them(population: App) -> None:
    client = console_client(population, "reader", pii=False)
    page = client.get("/console/groups/north")
    assert page.status_code == 200
    assert 'id="explain"' in page.text, "explaining is reading"
    for action in ['id="refresh"', 'id="preview"', 'action="/console/groups/north/refresh"']:
        assert action not in page.text
    csrf = csrf_in(page.text)  # the logout form's: a valid token of the session
    for path in ["/console/groups/north/refresh", "/console/groups/north/preview"]:
        refused = client.post(path, data={"csrf_token": csrf, "criteria": "null"})
        assert refused.status_code == 403, path
        assert "manage-groups" in message_of(refused.text)
    assert member_ids(population, "north") == ["a1", "a2", "a5"]
    ingest = console_client(population, "ingest")
    assert "/console/groups" not in ingest.get("/console/").text
    assert ingest.get("/console/groups").status_code == 403


def test_course_staff_see_and_reach_only_their_courses_groups(population: App) -> None:
    client = console_client(population, "course_staff", scope=f"course:{COURSE}", pii=False)
    home = client.get("/console/")
    assert 'href="/console/groups"' in home.text
    assert 'href="/console/links"' not in home.text
    listed = client.get("/console/groups")
    assert [row.split()[0] for row in rows(listed.text, "groups")] == ["course-south"]
    own = client.get("/console/groups/course-south")
    assert own.status_code == 200
    assert 'id="refresh"' in own.text, "course staff manage their courses' groups"
    csrf = csrf_in(own.text)
    assert client.post("/console/groups/course-south/refresh", data={"csrf_token": csrf}).status_code == 303
    for path in ["/console/groups/north", "/console/groups/north/explain?user=a1"]:
        refused = client.get(path)
        assert refused.status_code == 403, path
        assert "do not reach" in message_of(refused.text)
    assert client.post("/console/groups/north/refresh", data={"csrf_token": csrf}).status_code == 403
    assert client.get("/console/links").status_code == 403


def test_bad_input_is_a_message_on_a_page(population: App) -> None:
    client = console_client(population)
    for path, status in [
        ("/console/groups/nobody", 404),
        ("/console/groups/nobody/explain?user=a1", 404),
        ("/console/groups?after=" + "g" * 65, 422),
        ("/console/groups?course=" + "c" * 256, 422),
        ("/console/groups/north?history_after=-1", 422),
        ("/console/groups/north?history_after=x", 422),
        ("/console/groups/north?members_after=" + "u" * 256, 422),
        ("/console/groups/north/explain?user=" + "u" * 256, 422),
        ("/console/groups/" + "g" * 65, 422),
    ]:
        answer = client.get(path)
        assert answer.status_code == status, path
        assert answer.headers["content-type"].startswith("text/html")
        assert message_of(answer.text)
        assert "Traceback" not in answer.text
    csrf = csrf_in(client.get("/console/").text)
    missing = client.post("/console/groups/nobody/refresh", data={"csrf_token": csrf})
    assert missing.status_code == 404
    assert "no user group nobody" in message_of(missing.text)
    assert client.post("/console/groups/north/refresh", data={}).status_code == 403  # no CSRF token
