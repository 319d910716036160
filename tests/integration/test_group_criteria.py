"""User groups on every backend: each criterion type and operator on a small population whose members
are written out by hand, nested trees, overrides, membership by difference with its history, preview,
frozen groups, refresh on events, criterion types evaluated in Python, and concurrent refreshes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest

from courseinfra.adapters.sql.criteria import CriteriaCompiler
from courseinfra.adapters.sql.tables import user_enrolments, users
from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.criteria import (
    SHIPPED_TYPES,
    CriteriaRegistry,
    CriterionType,
    EvaluationContext,
    Fact,
    StrictConfig,
    UserFacts,
)
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.groups import GroupFrozen
from courseinfra.domain.users import RecordFormat, User
from courseinfra.services import content, enrolments
from courseinfra.services import users as user_service
from courseinfra.services.events.ingest import ingest
from courseinfra.services.groups import (
    GroupDefinition,
    UnknownUsers,
    create_group,
    explain_membership,
    preview_group,
    refresh_group,
    update_group,
)
from courseinfra.services.groups.ports import MembershipChange
from courseinfra.services.unit_of_work import UnitOfWork
from courseinfra.settings import Settings
from tests.support.builders import collection, leaf, progress_event

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
JAN_10 = datetime(2026, 1, 10, 9, tzinfo=UTC)
FEB_01 = datetime(2026, 2, 1, 23, 30, tzinfo=UTC)
FEB_15 = datetime(2026, 2, 15, 9, tzinfo=UTC)
MAR_01 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def add_course(app: App, course_id: str) -> None:
    content.put_hierarchy(
        collection(
            course_id,
            collection(f"{course_id}-m1", leaf(f"{course_id}-r1"), leaf(f"{course_id}-r2")),
            collection(f"{course_id}-m2", leaf(f"{course_id}-r3"), leaf(f"{course_id}-r4")),
            visibility="Default",
            name=f"Course {course_id}",
        ),
        app.uow_factory(),
    )
    content.publish(course_id, app.uow_factory())


def add_batch(app: App, batch_id: str, course_id: str) -> None:
    enrolments.create_batch(
        CourseBatch(batch_id, course_id, f"Batch {batch_id}", JAN_10, start_date=date(2026, 1, 1)),
        app.uow_factory(),
    )


def put_users(app: App, *people: User) -> None:
    with app.uow_factory() as uow:
        uow.users.upsert_many(people, JAN_10)
        uow.commit()


def progress(app: App, user: str, batch: str, course: str, *contents: tuple[str, int]) -> None:
    report = ingest(
        [progress_event(user, *contents, course=course, batch=batch)], "events", app.router, app.uow_factory
    )
    assert report.rejected == []


@pytest.fixture
def world(app: App) -> App:
    """Courses ``c1`` (units ``c1-m1`` = r1, r2 and ``c1-m2`` = r3, r4) and ``c2`` (alike); batches ``b1`` and ``b1x`` of
    c1, ``b2`` of c2. Users:

    - ann: staff, last login 1 day before NOW, district N, lang en; b1 audit (Jan 10); r1 r2 done: 50%,
      unit m1 100;
    - ben: last login 10 days before, district S; b1 verified (Feb 15); r1 done, r3 started: 25%;
    - cat: never logged in, no profile; b1 audit (Jan 10), every leaf done (100%, both units), then left
      b1; b2 verified (Mar 1), nothing done;
    - dan: staff, last login 30 days before, lang fr; no enrolment;
    - eve: last login at NOW, district N; b1x professional (Feb 1, 23:30 UTC); every leaf done: 100%;
    - ghost: enrolled in b1 but not in the directory: never a member.
    """
    add_course(app, "c1")
    add_course(app, "c2")
    app.relay()
    add_batch(app, "b1", "c1")
    add_batch(app, "b1x", "c1")
    add_batch(app, "b2", "c2")
    put_users(
        app,
        User(
            "ann",
            is_staff=True,
            last_login_at=NOW - timedelta(days=1),
            profile={"district": "N", "lang": "en"},
        ),
        User("ben", last_login_at=NOW - timedelta(days=10), profile={"district": "S"}),
        User("cat"),
        User("dan", is_staff=True, last_login_at=NOW - timedelta(days=30), profile={"lang": "fr"}),
        User("eve", last_login_at=NOW, profile={"district": "N"}),
    )
    enrol = app.uow_factory
    enrolments.enrol("ann", "b1", enrol(), at=JAN_10)
    enrolments.enrol("ben", "b1", enrol(), at=FEB_15, mode="verified")
    enrolments.enrol("cat", "b1", enrol(), at=JAN_10)
    enrolments.enrol("cat", "b2", enrol(), at=MAR_01, mode="verified")
    enrolments.enrol("eve", "b1x", enrol(), at=FEB_01, mode="professional")
    enrolments.enrol("ghost", "b1", enrol(), at=JAN_10)
    every = [(f"c1-r{n}", 2) for n in range(1, 5)]
    progress(app, "ann", "b1", "c1", ("c1-r1", 2), ("c1-r2", 2))
    progress(app, "ben", "b1", "c1", ("c1-r1", 2), ("c1-r3", 1))
    progress(app, "cat", "b1", "c1", *every)
    progress(app, "eve", "b1x", "c1", *every)
    enrolments.unenrol("cat", "b1", enrol())
    app.relay()
    with app.uow_factory() as uow:
        loaded = uow.group_facts.load(["ann", "ben", "cat", "dan", "eve", "ghost"])
    assert sorted(loaded) == ["ann", "ben", "cat", "dan", "eve"]
    percent = {
        (u, e.batch_id): (e.active, e.completion_percentage) for u, f in loaded.items() for e in f.enrolments
    }
    assert percent == {
        ("ann", "b1"): (True, 50),
        ("ben", "b1"): (True, 25),
        ("cat", "b1"): (False, 100),
        ("cat", "b2"): (True, 0),
        ("eve", "b1x"): (True, 100),
    }
    assert loaded["ann"].unit_progress[("b1", "c1-m1")] == 100
    assert loaded["ben"].unit_progress[("b1", "c1-m1")] == 50
    assert loaded["cat"].unit_progress[("b1", "c1-m2")] == 100
    return app


def crit(type_: str, operator: str, **config: Any) -> dict[str, Any]:
    return {"type": type_, "operator": operator, "config": config}


def members(app: App, group_id: str, uow: UnitOfWork | None = None) -> list[str]:
    with uow or app.uow_factory() as opened:
        return [m.user_id for m in opened.memberships.members(group_id, limit=10_000)]


def reasons(app: App, group_id: str) -> dict[str, str]:
    with app.uow_factory() as uow:
        return {m.user_id: m.reason for m in uow.memberships.members(group_id, limit=10_000)}


def history(app: App, group_id: str) -> list[MembershipChange]:
    with app.uow_factory() as uow:
        return uow.memberships.history(group_id, limit=10_000)


def changes(entries: list[MembershipChange]) -> list[tuple[str, str, str]]:
    return [(e.user_id, e.change, e.reason) for e in entries]


def make(
    app: App,
    group_id: str,
    criteria: dict[str, Any] | None,
    *,
    scope: str = "instance",
    now: datetime | None = NOW,
    factory: Callable[[], UnitOfWork] | None = None,
    registry: CriteriaRegistry | None = None,
    **definition: Any,
) -> list[str]:
    """Create a group; return its stored members, checking the stored count."""
    factory = factory or app.uow_factory
    create_group(
        group_id,
        GroupDefinition(group_id, scope, criteria=criteria, **definition),
        factory(),
        registry or app.registry,
        now=now,
    )
    found = members(app, group_id)
    with factory() as reader:
        group = reader.groups.get(group_id)
    assert group is not None
    assert group.member_count == len(found)
    return found


# --- every type and operator ---------------------------------------------------------------------------

CASES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    # course_enrolment: active enrolments only, by mode and by day (UTC, both ends inclusive)
    ("enrol-is", crit("course_enrolment", "is", course_id="c1"), "instance", ["ann", "ben", "eve"]),
    ("enrol-is-not", crit("course_enrolment", "is_not", course_id="c1"), "instance", ["cat", "dan"]),
    (
        "enrol-modes",
        crit("course_enrolment", "is", course_id="c1", modes=["verified", "professional"]),
        "instance",
        ["ben", "eve"],
    ),
    ("enrol-no-mode", crit("course_enrolment", "is", course_id="c1", modes=[]), "instance", []),
    (
        "enrol-not-modes",
        crit("course_enrolment", "is_not", course_id="c1", modes=["audit"]),
        "instance",
        ["ben", "cat", "dan", "eve"],
    ),
    (
        "enrol-from",
        crit("course_enrolment", "is", course_id="c1", enrolled_from="2026-02-01"),
        "instance",
        ["ben", "eve"],
    ),
    (
        "enrol-until",
        crit("course_enrolment", "is", course_id="c1", enrolled_until="2026-01-31"),
        "instance",
        ["ann"],
    ),
    (
        "enrol-one-day",
        crit(
            "course_enrolment", "is", course_id="c1", enrolled_from="2026-02-01", enrolled_until="2026-02-01"
        ),
        "instance",
        ["eve"],
    ),
    (
        "enrol-range-not",
        crit(
            "course_enrolment",
            "is_not",
            course_id="c1",
            enrolled_from="2026-02-02",
            enrolled_until="2026-02-20",
        ),
        "instance",
        ["ann", "cat", "dan", "eve"],
    ),
    ("enrol-course-scope", crit("course_enrolment", "is"), "course:c2", ["cat"]),
    ("enrol-course-scope-not", crit("course_enrolment", "is_not"), "course:c2", ["ann", "ben", "dan", "eve"]),
    # enrolment_mode
    ("mode-in", crit("enrolment_mode", "in", course_id="c1", modes=["audit"]), "instance", ["ann"]),
    (
        "mode-in-two",
        crit("enrolment_mode", "in", course_id="c1", modes=["verified", "audit"]),
        "instance",
        ["ann", "ben"],
    ),
    (
        "mode-not-in",
        crit("enrolment_mode", "not_in", course_id="c1", modes=["audit"]),
        "instance",
        ["ben", "cat", "dan", "eve"],
    ),
    ("mode-course-scope", crit("enrolment_mode", "in", modes=["verified"]), "course:c2", ["cat"]),
    # last_login: NOW - 1 day is on the edge of "within 1 day"
    ("login-1", crit("last_login", "within_days", days=1), "instance", ["ann", "eve"]),
    ("login-10", crit("last_login", "within_days", days=10), "instance", ["ann", "ben", "eve"]),
    ("login-0", crit("last_login", "within_days", days=0), "instance", ["eve"]),
    ("login-not-10", crit("last_login", "not_within_days", days=10), "instance", ["cat", "dan"]),
    ("login-not-9", crit("last_login", "not_within_days", days=9), "instance", ["ben", "cat", "dan"]),
    ("login-never", crit("last_login", "never"), "instance", ["cat"]),
    # staff_status
    ("staff", crit("staff_status", "is_staff"), "instance", ["ann", "dan"]),
    ("not-staff", crit("staff_status", "is_not_staff"), "instance", ["ben", "cat", "eve"]),
    # profile_field
    ("profile-eq", crit("profile_field", "equals", field="district", value="N"), "instance", ["ann", "eve"]),
    ("profile-eq-none", crit("profile_field", "equals", field="district", value="n"), "instance", []),
    ("profile-in", crit("profile_field", "in", field="district", values=["S", "X"]), "instance", ["ben"]),
    ("profile-exists", crit("profile_field", "exists", field="lang"), "instance", ["ann", "dan"]),
    (
        "profile-exists-2",
        crit("profile_field", "exists", field="district"),
        "instance",
        ["ann", "ben", "eve"],
    ),
    # course_progress: the active enrolment of the batch only (cat's 100 in b1 is inactive)
    ("progress-lt", crit("course_progress", "lt", batch_id="b1", value=50), "instance", ["ben"]),
    ("progress-le", crit("course_progress", "le", batch_id="b1", value=50), "instance", ["ann", "ben"]),
    ("progress-gt", crit("course_progress", "gt", batch_id="b1", value=25), "instance", ["ann"]),
    ("progress-ge", crit("course_progress", "ge", batch_id="b1", value=25), "instance", ["ann", "ben"]),
    ("progress-eq", crit("course_progress", "eq", batch_id="b1", value=50), "instance", ["ann"]),
    ("progress-eq-100", crit("course_progress", "eq", batch_id="b1", value=100), "instance", []),
    ("progress-eq-b1x", crit("course_progress", "eq", batch_id="b1x", value=100), "instance", ["eve"]),
    ("progress-lt-b2", crit("course_progress", "lt", batch_id="b2", value=1), "instance", ["cat"]),
    # content_completion: status 2 of a leaf, or a unit at 100, in the batch
    (
        "leaf-done",
        crit("content_completion", "completed", batch_id="b1", content_id="c1-r1"),
        "instance",
        ["ann", "ben", "cat"],
    ),
    (
        "leaf-started-is-not-done",
        crit("content_completion", "completed", batch_id="b1", content_id="c1-r3"),
        "instance",
        ["cat"],
    ),
    (
        "leaf-not-done",
        crit("content_completion", "not_completed", batch_id="b1", content_id="c1-r1"),
        "instance",
        ["dan", "eve"],
    ),
    (
        "unit-done",
        crit("content_completion", "completed", batch_id="b1", kind="unit", content_id="c1-m1"),
        "instance",
        ["ann", "cat"],
    ),
    (
        "unit-done-b1x",
        crit("content_completion", "completed", batch_id="b1x", kind="unit", content_id="c1-m2"),
        "instance",
        ["eve"],
    ),
    (
        "unit-not-done",
        crit("content_completion", "not_completed", batch_id="b1", kind="unit", content_id="c1-m1"),
        "instance",
        ["ben", "dan", "eve"],
    ),
    # manual: directory users only
    ("manual", crit("manual", "in", user_ids=["dan", "ann", "ghost", "nobody"]), "instance", ["ann", "dan"]),
    ("manual-none", crit("manual", "in", user_ids=[]), "instance", []),
]


def test_every_type_and_operator_selects_the_members_written_by_hand(world: App) -> None:
    app = world
    covered = {(c["type"], c["operator"]) for _, c, _, _ in CASES}
    assert covered == {(t.name, op) for t in SHIPPED_TYPES for op in t.operators}
    for group_id, criteria, scope, expected in CASES:
        assert make(app, group_id, criteria, scope=scope) == expected, group_id
        assert set(reasons(app, group_id).values()) <= {"criteria"}
        # The Python evaluation agrees, user by user (explain_membership's would_be_member).
        for user in ("ann", "ben", "cat", "dan", "eve"):
            explained = explain_membership(group_id, user, app.uow_factory, app.registry, now=NOW)
            assert explained["would_be_member"] is (user in expected), (group_id, user)
            assert explained["member"] is (user in expected), (group_id, user)


def test_explain_shows_each_learners_progress_beside_the_threshold(world: App) -> None:
    """Issue 14: "below 30% in b1" explained ``holds: false`` without the learner's progress."""
    make(world, "low", crit("course_progress", "lt", batch_id="b1", value=30))
    explained = {
        user: explain_membership("low", user, world.uow_factory, world.registry, now=NOW)["criteria"]
        for user in ("ann", "ben", "cat", "dan")
    }
    assert {user: (e["holds"], e["value"], e["compared_to"]) for user, e in explained.items()} == {
        "ann": (False, 50, 30),
        "ben": (True, 25, 30),
        "cat": (False, None, 30),  # left b1 (at 100%): an inactive enrolment is not compared
        "dan": (False, None, 30),  # not enrolled
    }
    assert explained["ann"]["operator"] == "lt"


NESTED: list[tuple[dict[str, Any], list[str]]] = [
    (
        {"and": [crit("course_enrolment", "is", course_id="c1"), {"not": crit("staff_status", "is_staff")}]},
        ["ben", "eve"],
    ),
    ({"or": [crit("staff_status", "is_staff"), crit("last_login", "never")]}, ["ann", "cat", "dan"]),
    ({"not": {"or": [crit("staff_status", "is_staff"), crit("last_login", "never")]}}, ["ben", "eve"]),
    (
        {
            "or": [
                {
                    "and": [
                        crit("staff_status", "is_staff"),
                        crit("profile_field", "exists", field="district"),
                    ]
                },
                {"not": {"not": crit("course_progress", "eq", batch_id="b1x", value=100)}},
            ]
        },
        ["ann", "eve"],
    ),
    (
        {
            "and": [
                {"not": crit("course_enrolment", "is", course_id="c2")},
                {
                    "or": [
                        crit("content_completion", "completed", batch_id="b1", content_id="c1-r1"),
                        {"not": crit("last_login", "within_days", days=10)},
                    ]
                },
                {"not": {"and": [crit("staff_status", "is_staff"), crit("manual", "in", user_ids=["ann"])]}},
            ]
        },
        ["ben", "dan"],
    ),
    ({"not": {"and": [crit("manual", "in", user_ids=["ann", "ben"])]}}, ["cat", "dan", "eve"]),
]


def test_nested_and_or_not(world: App) -> None:
    for number, (criteria, expected) in enumerate(NESTED):
        assert make(world, f"nested-{number}", criteria) == expected, criteria


def test_include_and_exclude_override_the_criteria_with_their_reasons(world: App) -> None:
    app = world
    assert make(
        app, "staff", crit("staff_status", "is_staff"), include=["ben", " cat "], exclude=["ann"]
    ) == ["ben", "cat", "dan"]
    assert reasons(app, "staff") == {"ben": "included", "cat": "included", "dan": "criteria"}
    assert make(app, "only-included", None, include=["eve"]) == ["eve"]
    assert reasons(app, "only-included") == {"eve": "included"}
    # ghost (enrolled, but not in the directory) is refused: it could never be a member.
    with pytest.raises(UnknownUsers) as refused:
        make(app, "with-ghost", None, include=["eve", "ghost"], exclude=["nobody"])
    assert refused.value.unknown == [("include", "ghost"), ("exclude", "nobody")]
    # An included user who also matches is a member "included"; an excluded user is no member at all.
    assert make(app, "both", crit("staff_status", "is_staff"), include=["dan"], exclude=["ann"]) == ["dan"]
    assert reasons(app, "both") == {"dan": "included"}
    explained = explain_membership("both", "ann", app.uow_factory, app.registry, now=NOW)
    assert (explained["member"], explained["would_be_member"], explained["reason"]) == (
        False,
        False,
        "excluded",
    )
    assert explained["criteria"]["holds"] is True


def test_membership_changes_by_difference_and_keeps_its_history(world: App) -> None:
    app = world
    t1, t2, t3, t4 = (NOW + timedelta(minutes=n) for n in range(1, 5))
    assert make(app, "g", crit("staff_status", "is_staff"), now=t1) == ["ann", "dan"]
    first = history(app, "g")
    assert changes(first) == [("ann", "joined", "criteria"), ("dan", "joined", "criteria")]
    assert {e.at for e in first} == {t1}

    # The same rules again: no change, no history.
    _, result = refresh_group("g", app.uow_factory(), now=t2)
    assert (result.joined, result.left, result.member_count) == (0, 0, 2)
    assert history(app, "g") == first

    # New criteria: exactly the joins and leaves, with their reasons; ann stays (her join is kept).
    view, changed = update_group(
        "g",
        app.uow_factory(),
        app.registry,
        expected_version=1,
        criteria=crit("course_enrolment", "is", course_id="c1"),
        now=t3,
    )
    assert changed is not None
    assert (changed.joined, changed.left, changed.member_count) == (2, 1, 3)
    assert view.group.version == 2
    assert members(app, "g") == ["ann", "ben", "eve"]
    second = history(app, "g")
    assert second[:2] == first
    assert changes(second[2:]) == [
        ("ben", "joined", "criteria"),
        ("eve", "joined", "criteria"),
        ("dan", "left", "not-matched"),
    ]
    assert {e.at for e in second[2:]} == {t3}
    with app.uow_factory() as uow:
        joined_at = {m.user_id: m.joined_at for m in uow.memberships.members("g")}
    assert joined_at == {"ann": t1, "ben": t3, "eve": t3}

    # An exclusion is a leave "excluded"; an inclusion a join "included".
    update_group(
        "g", app.uow_factory(), app.registry, expected_version=2, exclude=["eve"], include=["dan"], now=t4
    )
    assert members(app, "g") == ["ann", "ben", "dan"]
    assert changes(history(app, "g")[5:]) == [("dan", "joined", "included"), ("eve", "left", "excluded")]
    assert changes(history(app, "g")[:5]) == changes(second)
    with app.uow_factory() as uow:
        assert [e.change for e in uow.memberships.history("g", user_id="dan")] == ["joined", "left", "joined"]
        group = uow.groups.get("g")
    assert group is not None
    assert (group.member_count, group.last_refreshed_at, group.version) == (3, t4, 3)


def test_preview_writes_nothing(world: App) -> None:
    app = world
    make(app, "g", crit("staff_status", "is_staff"))
    with app.uow_factory() as uow:
        before = uow.groups.get("g")
    result = preview_group(
        "g", app.uow_factory, app.registry, criteria=crit("last_login", "within_days", days=10), now=NOW
    )
    assert (result.joined, result.left, result.member_count) == (2, 1, 3)
    assert (result.joined_ids, result.left_ids) == (("ben", "eve"), ("dan",))
    stored = preview_group("g", app.uow_factory, app.registry, now=NOW)
    assert (stored.joined, stored.left, stored.member_count) == (0, 0, 2)
    sampled = preview_group("g", app.uow_factory, app.registry, criteria=None, sample=1, now=NOW)
    assert (sampled.left, sampled.left_ids, sampled.member_count) == (2, ("ann",), 0)
    assert members(app, "g") == ["ann", "dan"]
    assert changes(history(app, "g")) == [("ann", "joined", "criteria"), ("dan", "joined", "criteria")]
    with app.uow_factory() as uow:
        assert uow.groups.get("g") == before


def test_a_frozen_group_is_not_refreshed_and_keeps_its_members(world: App) -> None:
    app = world
    assert make(app, "cold", crit("staff_status", "is_staff"), frozen=True) == []
    make(app, "g", crit("staff_status", "is_staff"))
    update_group("g", app.uow_factory(), app.registry, expected_version=1, frozen=True)
    with pytest.raises(GroupFrozen):
        refresh_group("g", app.uow_factory())
    view, result = update_group(
        "g", app.uow_factory(), app.registry, expected_version=2, criteria=crit("last_login", "never")
    )
    assert result is None
    assert view.group.frozen
    assert members(app, "g") == ["ann", "dan"]
    assert len(history(app, "g")) == 2
    # Thawed, it follows its (new) criteria again.
    _, thawed = update_group("g", app.uow_factory(), app.registry, expected_version=3, frozen=False, now=NOW)
    assert thawed is not None
    assert members(app, "g") == ["cat"]


# --- refresh on events ---------------------------------------------------------------------------------


def counted(app: App, *group_ids: str) -> None:
    """The stored member count of each group is its number of members (events move it by difference)."""
    with app.uow_factory() as uow:
        for group_id in group_ids:
            group = uow.groups.get(group_id)
            assert group is not None
            assert group.member_count == len(uow.memberships.members(group_id, limit=10_000)), group_id


def raw(app: App, statement: Any) -> None:
    """Change a fact behind the application's back: no event, so no refresh should see it."""
    with app.engine.begin() as connection:
        connection.execute(statement)


def test_an_enrolment_refreshes_only_its_user_in_the_groups_reading_enrolments(world: App) -> None:
    app = world
    assert make(
        app,
        "in-c2",
        {"or": [crit("course_enrolment", "is", course_id="c2"), crit("staff_status", "is_staff")]},
        now=None,
    ) == ["ann", "cat", "dan"]
    assert make(app, "audit-c1", crit("enrolment_mode", "in", course_id="c1", modes=["audit"]), now=None) == [
        "ann"
    ]
    assert make(app, "staff", crit("staff_status", "is_staff"), now=None) == ["ann", "dan"]
    staff_history = history(app, "staff")
    # ben becomes staff silently: only a full refresh would see it.
    raw(app, users.update().where(users.c.user_id == "ben").values(is_staff=True))
    enrolments.enrol("eve", "b2", app.uow_factory())
    enrolments.enrol("eve", "b1", app.uow_factory(), mode="audit")
    app.relay()
    assert members(app, "in-c2") == ["ann", "cat", "dan", "eve"]
    assert members(app, "audit-c1") == ["ann", "eve"]
    assert history(app, "in-c2")[-1].reason == "criteria"
    assert history(app, "staff") == staff_history
    assert members(app, "staff") == ["ann", "dan"]
    # Leaving a batch is an enrolment change too.
    enrolments.unenrol("cat", "b2", app.uow_factory())
    app.relay()
    assert members(app, "in-c2") == ["ann", "dan", "eve"]
    assert changes(history(app, "in-c2"))[-1] == ("cat", "left", "not-matched")
    assert history(app, "staff") == staff_history
    counted(app, "in-c2", "audit-c1", "staff")


def test_a_login_refreshes_only_its_user_in_the_groups_reading_logins(world: App) -> None:
    app = world
    assert make(app, "never", crit("last_login", "never"), now=None) == ["cat"]
    assert make(app, "staff", crit("staff_status", "is_staff"), now=None) == ["ann", "dan"]
    assert make(
        app,
        "never-or-n",
        {"or": [crit("last_login", "never"), crit("profile_field", "equals", field="district", value="N")]},
        now=None,
    ) == ["ann", "cat", "eve"]
    staff_history = history(app, "staff")
    raw(app, users.update().where(users.c.user_id == "dan").values(last_login_at=None))
    _, moved = user_service.record_login("cat", app.uow_factory())
    assert moved
    app.relay()
    assert members(app, "never") == []
    assert changes(history(app, "never"))[-1] == ("cat", "left", "not-matched")
    assert members(app, "never-or-n") == ["ann", "eve"]
    assert history(app, "staff") == staff_history
    counted(app, "never", "never-or-n", "staff")
    # dan's login was erased silently: nothing re-evaluated him.
    user_service.record_login("ann", app.uow_factory())
    app.relay()
    assert members(app, "never") == []


def test_a_progress_ingest_refreshes_only_its_users_in_the_groups_reading_progress(world: App) -> None:
    app = world
    assert make(app, "ahead", crit("course_progress", "ge", batch_id="b1", value=75), now=None) == []
    assert make(
        app,
        "m2-done",
        crit("content_completion", "completed", batch_id="b1", kind="unit", content_id="c1-m2"),
        now=None,
    ) == ["cat"]
    assert make(app, "staff", crit("staff_status", "is_staff"), now=None) == ["ann", "dan"]
    assert make(app, "login", crit("last_login", "never"), now=None) == ["cat"]
    untouched = {g: history(app, g) for g in ("staff", "login")}
    raw(
        app,
        user_enrolments.update()
        .where(user_enrolments.c.userid == "ben", user_enrolments.c.batchid == "b1")
        .values(completionpercentage=100),
    )
    raw(app, users.update().where(users.c.user_id == "ben").values(is_staff=True))
    progress(app, "ann", "b1", "c1", ("c1-r3", 2))
    app.relay()
    assert members(app, "ahead") == ["ann"]
    assert members(app, "m2-done") == ["cat"]
    progress(app, "ann", "b1", "c1", ("c1-r4", 2))
    app.relay()
    assert members(app, "m2-done") == ["ann", "cat"]
    assert changes(history(app, "ahead")) == [("ann", "joined", "criteria")]
    assert history(app, "ahead")[0].at > NOW - timedelta(days=3650)
    assert {g: history(app, g) for g in ("staff", "login")} == untouched
    assert members(app, "staff") == ["ann", "dan"]
    counted(app, "ahead", "m2-done")


def test_an_import_that_changes_the_staff_flag_refreshes_the_groups_reading_it(world: App) -> None:
    app = world
    assert make(app, "staff", crit("staff_status", "is_staff"), now=None) == ["ann", "dan"]
    assert make(app, "not-staff", crit("staff_status", "is_not_staff"), now=None) == ["ben", "cat", "eve"]
    assert make(app, "never", crit("last_login", "never"), now=None) == ["cat"]
    untouched = history(app, "never")
    report = user_service.import_users(
        "user_id,is_staff\nben,true\nann,false\n", RecordFormat.CSV, app.uow_factory
    )
    assert report.ok, report
    app.relay()
    assert members(app, "staff") == ["ben", "dan"]
    assert members(app, "not-staff") == ["ann", "cat", "eve"]
    assert changes(history(app, "staff"))[-2:] in (
        [("ann", "left", "not-matched"), ("ben", "joined", "criteria")],
        [("ben", "joined", "criteria"), ("ann", "left", "not-matched")],
    )
    assert history(app, "never") == untouched
    # The same import again changes nothing, and refreshes nothing.
    staff_history = history(app, "staff")
    user_service.import_users("user_id,is_staff\nben,true\nann,false\n", RecordFormat.CSV, app.uow_factory)
    app.relay()
    assert history(app, "staff") == staff_history


def test_events_leave_disabled_and_frozen_groups_alone(world: App) -> None:
    app = world
    make(app, "off", crit("last_login", "never"), enabled=False, now=None)
    make(app, "cold", crit("last_login", "never"), now=None)
    update_group("cold", app.uow_factory(), app.registry, expected_version=1, frozen=True)
    user_service.record_login("cat", app.uow_factory())
    app.relay()
    assert members(app, "off") == ["cat"]
    assert members(app, "cold") == ["cat"]
    # A disabled group is refreshed on demand.
    refresh_group("off", app.uow_factory())
    assert members(app, "off") == []


# --- criterion types without SQL -----------------------------------------------------------------------


class InitialsConfig(StrictConfig):
    initials: list[str]


class Initials(CriterionType):
    """A plugin type with a Python evaluation only: the user id starts with one of ``initials``."""

    name = "initials"
    description = "The user id's first letter."
    config_model = InitialsConfig
    operators = ("in",)
    facts = frozenset({Fact.DIRECTORY})
    calls: ClassVar[list[str]] = []

    def holds(
        self, operator: str, config: InitialsConfig, facts: UserFacts, context: EvaluationContext
    ) -> bool:
        self.calls.append(facts.user.user_id)
        return facts.user.user_id[:1] in config.initials


def test_a_type_without_sql_is_evaluated_in_python_over_the_candidates(world: App) -> None:
    app = world
    registry = CriteriaRegistry((*SHIPPED_TYPES, Initials()))
    compiler = CriteriaCompiler()

    def uow() -> UnitOfWork:
        return SqlUnitOfWork(app.engine, registry, compiler)

    initials = crit("initials", "in", initials=["a", "e"])
    staff = crit("staff_status", "is_staff")
    cases: list[tuple[dict[str, Any], list[str], int | None]] = [
        (initials, ["ann", "eve"], 5),
        ({"and": [initials, staff]}, ["ann"], 2),  # only the staff are candidates
        ({"not": initials}, ["ben", "cat", "dan"], 5),
        (
            {"not": {"and": [initials, crit("course_enrolment", "is", course_id="c1")]}},
            ["ben", "cat", "dan"],
            5,
        ),
        ({"or": [initials, staff]}, ["ann", "dan", "eve"], None),
        ({"not": {"or": [initials, staff]}}, ["ben", "cat"], 3),  # candidates: not staff
        ({"not": {"not": {"and": [initials, crit("last_login", "never")]}}}, [], 1),
        ({"and": [{"not": initials}, crit("course_progress", "ge", batch_id="b1", value=25)]}, ["ben"], 2),
    ]
    for number, (criteria, expected, evaluated) in enumerate(cases):
        Initials.calls.clear()
        assert make(app, f"py-{number}", criteria, factory=uow, registry=registry) == expected, criteria
        if evaluated is not None:
            assert len(Initials.calls) == evaluated, (criteria, Initials.calls)
        with uow() as opened:
            stored = opened.groups.get(f"py-{number}")
        assert stored is not None
        assert stored.criteria == registry.parse(criteria, stored.scope)
    # Overrides hold in the Python path too, with their reasons.
    assert make(
        app, "py-over", {"not": initials}, factory=uow, registry=registry, include=["eve"], exclude=["ben"]
    ) == ["cat", "dan", "eve"]
    assert reasons(app, "py-over") == {"cat": "criteria", "dan": "criteria", "eve": "included"}
    # A refresh after a change goes through the same path, by difference.
    _, result = refresh_group("py-over", uow(), now=NOW)
    assert (result.joined, result.left) == (0, 0)
    update_group("py-over", uow(), registry, expected_version=1, exclude=["ben", "dan"], now=NOW)
    assert members(app, "py-over") == ["cat", "eve"]
    assert changes(history(app, "py-over"))[-1] == ("dan", "left", "excluded")


# --- concurrency ---------------------------------------------------------------------------------------


def test_concurrent_refreshes_while_the_criteria_change_give_one_evaluation(app: App) -> None:
    people = [
        User(f"u{n:03d}", is_staff=n % 2 == 0, profile={"half": "a" if n < 60 else "b"}) for n in range(120)
    ]
    put_users(app, *people)
    staff = sorted(u.user_id for u in people if u.is_staff)
    not_staff = sorted(u.user_id for u in people if not u.is_staff)
    first_half = sorted(u.user_id for u in people if u.profile["half"] == "a")
    criteria = [
        crit("staff_status", "is_staff"),
        crit("staff_status", "is_not_staff"),
        crit("profile_field", "equals", field="half", value="a"),
    ]
    outcomes = [staff, not_staff, first_half]
    make(app, "g", criteria[0], now=None)
    for round_number in range(4):
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []

        def run(
            action: Callable[[], object],
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                barrier.wait(timeout=20)
                action()
            except BaseException as error:
                errors.append(error)

        new = criteria[(round_number + 1) % 3]
        threads = [
            threading.Thread(target=run, args=(lambda: refresh_group("g", app.uow_factory()),)),
            threading.Thread(
                target=run,
                args=(
                    lambda new=new: update_group(
                        "g", app.uow_factory(), app.registry, expected_version=None, criteria=new
                    ),
                ),
            ),
            threading.Thread(target=run, args=(lambda: refresh_group("g", app.uow_factory()),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        found = members(app, "g")
        assert found == outcomes[(round_number + 1) % 3], f"round {round_number}: a mixture"
        with app.uow_factory() as uow:
            group = uow.groups.get("g")
        assert group is not None
        assert group.member_count == len(found)
        last: dict[str, str] = {}
        for entry in history(app, "g"):
            assert last.get(entry.user_id, "left") != entry.change, f"two {entry.change} in a row: {entry}"
            last[entry.user_id] = entry.change
        assert sorted(u for u, change in last.items() if change == "joined") == found


# --- regressions (bugs found by this suite, fixed in 50aa8eb) -----------------------------------------


def test_not_profile_equals_admits_users_without_the_field(world: App) -> None:
    expected = ["ben", "cat", "dan"]
    assert (
        make(world, "not-n", {"not": crit("profile_field", "equals", field="district", value="N")})
        == expected
    )


def test_not_profile_in_admits_users_without_the_field(world: App) -> None:
    expected = ["ann", "cat", "dan", "eve"]
    assert (
        make(world, "not-s", {"not": crit("profile_field", "in", field="district", values=["S"])}) == expected
    )


def test_a_now_in_another_time_zone_gives_the_same_members(world: App) -> None:
    # NOW + 1 hour, written at +05:00: ann (NOW - 1 day) is no longer within 1 day, eve is.
    later = (NOW + timedelta(hours=1)).astimezone(timezone(timedelta(hours=5)))
    assert make(world, "tz", crit("last_login", "within_days", days=1), now=later) == ["eve"]
    with world.uow_factory() as uow:
        assert [m.joined_at for m in uow.memberships.members("tz")] == [later]
        assert [e.at for e in uow.memberships.history("tz")] == [later]


def test_an_auto_enrolment_refreshes_the_groups_reading_enrolments(world: App, settings: Settings) -> None:
    assert make(world, "in-c2", crit("course_enrolment", "is", course_id="c2"), now=None) == ["cat"]
    auto = bootstrap(settings.model_copy(update={"aggregator_auto_enrol": True}))
    try:
        progress(auto, "ann", "b2", "c2", ("c2-r1", 2))
        with auto.uow_factory() as uow:
            enrolled = uow.group_facts.load(["ann"])["ann"].enrolments
        assert ("b2", True) in {(e.batch_id, e.active) for e in enrolled}
        auto.relay()
    finally:
        auto.close()
    assert members(world, "in-c2") == ["ann", "cat"]
