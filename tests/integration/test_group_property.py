"""The SQL evaluation of a group equals the plain Python evaluation, on every backend: random small
populations (directory fields, enrolments, content status, unit progress, written directly) and random
criteria trees over every shipped type (depth up to 3), checked by a full refresh, a preview and a
refresh of a few users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from courseinfra.adapters.sql.tables import (
    user_activity_agg,
    user_enrolments,
    user_group_history,
    user_group_members,
    user_group_overrides,
    user_groups,
    users,
)
from courseinfra.bootstrap import App
from courseinfra.domain.criteria import EvaluationContext, MembershipRule, Scope
from courseinfra.services.groups import GroupDefinition, create_group, preview_group

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
BATCHES = {"b1": "c1", "b2": "c1", "b3": "c2"}
MODES = ["audit", "verified", "honor"]
FIELDS = ["district", "lang", "a.b"]
VALUES = ["N", "S", ""]
PERCENTS = [0, 25, 50, 99, 100]
DAYS = [0, 1, 2, 7]
# Enrolment times around the day boundaries of DATES.
ENROLLED = [
    datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2026, 2, 1, 0, 0, tzinfo=UTC),
    datetime(2026, 2, 1, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 2, 2, 12, 0, tzinfo=UTC),
]
DATES = ["2026-01-31", "2026-02-01", "2026-02-02"]
CONTENTS = ["r1", "r2", "r.3"]
UNITS = ["m1", "m2"]
MAX_USERS = 30
IDS = [f"u{n:02d}" for n in range(MAX_USERS)]


# --- populations ---------------------------------------------------------------------------------------

logins = st.one_of(
    st.none(),
    st.builds(
        lambda days, second: NOW - timedelta(days=days, seconds=second),
        st.sampled_from(DAYS),
        st.sampled_from([0, 1, -1]),
    ),
)
enrolment = st.fixed_dictionaries(
    {
        "active": st.booleans(),
        "mode": st.sampled_from(MODES),
        "enrolleddate": st.sampled_from(ENROLLED),
        "completionpercentage": st.sampled_from(PERCENTS),
        "contentstatus": st.dictionaries(st.sampled_from(CONTENTS), st.integers(0, 2), max_size=3),
    }
)
person = st.fixed_dictionaries(
    {
        "is_staff": st.booleans(),
        "last_login_at": logins,
        "profile": st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(VALUES), max_size=3),
        "enrolments": st.dictionaries(st.sampled_from(sorted(BATCHES)), enrolment, max_size=2),
        "units": st.dictionaries(
            st.tuples(st.sampled_from(sorted(BATCHES)), st.sampled_from(UNITS)),
            st.sampled_from([0, 50, 99, 100]),
            max_size=3,
        ),
    }
)
populations = st.lists(person, min_size=1, max_size=MAX_USERS)


def load(app: App, population: list[dict[str, Any]]) -> list[str]:
    """Write the population directly (SQLAlchemy Core), after clearing the tables of earlier examples."""
    ids = IDS[: len(population)]
    with app.engine.begin() as connection:
        for table in (
            user_group_history,
            user_group_members,
            user_group_overrides,
            user_groups,
            user_activity_agg,
            user_enrolments,
            users,
        ):
            connection.execute(table.delete())
        connection.execute(
            users.insert(),
            [
                {
                    "user_id": user_id,
                    "is_staff": p["is_staff"],
                    "last_login_at": p["last_login_at"],
                    "profile": p["profile"],
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for user_id, p in zip(ids, population, strict=True)
            ],
        )
        rows = [
            {
                "userid": user_id,
                "courseid": BATCHES[batch],
                "batchid": batch,
                "datetime": NOW,
                "progress": 0,
                "status": 1,
                "certificates": [],
                **e,
            }
            for user_id, p in zip(ids, population, strict=True)
            for batch, e in p["enrolments"].items()
        ]
        if rows:
            connection.execute(user_enrolments.insert(), rows)
        units = [
            {
                "activity_type": "CourseUnit",
                "activity_id": unit,
                "user_id": user_id,
                "context_id": f"cb:{batch}",
                "agg": {"completedCount": 0, "leafNodesCount": 2, "progress": percent},
                "agg_last_updated": {},
            }
            for user_id, p in zip(ids, population, strict=True)
            for (batch, unit), percent in p["units"].items()
        ]
        if units:
            connection.execute(user_activity_agg.insert(), units)
    return ids


# --- criteria trees ------------------------------------------------------------------------------------


def leaf(type_: str, operator: Any, config: Any) -> st.SearchStrategy[dict[str, Any]]:
    operators = operator if isinstance(operator, st.SearchStrategy) else st.just(operator)
    return st.builds(lambda o, c: {"type": type_, "operator": o, "config": c}, operators, config)


def course(in_course_scope: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A course_id, which a course scope (course:c1) lets one leave out."""
    named = st.sampled_from(["c1", "c2"]).map(lambda c: {"course_id": c})
    return st.one_of(named, st.just({})) if in_course_scope else named


def optional(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


def merged(*parts: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


def leaves(in_course_scope: bool) -> st.SearchStrategy[dict[str, Any]]:
    modes = st.lists(st.sampled_from(MODES), min_size=1, max_size=2, unique=True)
    batch = st.sampled_from([*sorted(BATCHES), "nope"])
    return st.one_of(
        leaf(
            "manual",
            "in",
            st.builds(lambda u: {"user_ids": u}, st.lists(st.sampled_from([*IDS[:12], "zz"]), max_size=5)),
        ),
        leaf(
            "course_enrolment",
            st.sampled_from(["is", "is_not"]),
            merged(
                course(in_course_scope),
                optional("modes", st.lists(st.sampled_from(MODES), max_size=2, unique=True)),
                optional("enrolled_from", st.sampled_from(DATES)),
                optional("enrolled_until", st.sampled_from(DATES)),
            ),
        ),
        leaf(
            "enrolment_mode",
            st.sampled_from(["in", "not_in"]),
            merged(course(in_course_scope), modes.map(lambda m: {"modes": m})),
        ),
        leaf(
            "last_login",
            st.sampled_from(["within_days", "not_within_days", "never"]),
            st.sampled_from(DAYS).map(lambda d: {"days": d}),
        ),
        leaf("staff_status", st.sampled_from(["is_staff", "is_not_staff"]), st.just({})),
        st.one_of(
            leaf(
                "profile_field",
                "equals",
                st.builds(
                    lambda f, v: {"field": f, "value": v},
                    st.sampled_from(FIELDS),
                    st.sampled_from([*VALUES, "X"]),
                ),
            ),
            leaf(
                "profile_field",
                "in",
                st.builds(
                    lambda f, v: {"field": f, "values": v},
                    st.sampled_from(FIELDS),
                    st.lists(st.sampled_from([*VALUES, "X"]), min_size=1, max_size=2, unique=True),
                ),
            ),
            leaf("profile_field", "exists", st.sampled_from(FIELDS).map(lambda f: {"field": f})),
        ),
        leaf(
            "course_progress",
            st.sampled_from(["lt", "le", "gt", "ge", "eq"]),
            st.builds(lambda b, v: {"batch_id": b, "value": v}, batch, st.sampled_from(PERCENTS)),
        ),
        leaf(
            "content_completion",
            st.sampled_from(["completed", "not_completed"]),
            st.one_of(
                st.builds(lambda b, c: {"batch_id": b, "content_id": c}, batch, st.sampled_from(CONTENTS)),
                st.builds(
                    lambda b, u: {"batch_id": b, "kind": "unit", "content_id": u},
                    batch,
                    st.sampled_from(UNITS),
                ),
            ),
        ),
    )


def trees(in_course_scope: bool, depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    base = leaves(in_course_scope)
    if depth == 0:
        return base
    inner = trees(in_course_scope, depth - 1)
    return st.one_of(
        base,
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"and": c}),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"or": c}),
        inner.map(lambda c: {"not": c}),
    )


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    population = draw(populations)
    ids = IDS[: len(population)]
    in_course_scope = draw(st.booleans())
    criteria = trees(in_course_scope)
    overrides = draw(st.lists(st.sampled_from(ids), max_size=4, unique=True))
    split = draw(st.integers(0, len(overrides)))
    return {
        "population": population,
        "scope": "course:c1" if in_course_scope else "instance",
        "first": draw(st.one_of(st.none(), criteria)),
        "second": draw(criteria),
        "third": draw(criteria),
        "include": overrides[:split],
        "exclude": overrides[split:],
        "few": draw(st.lists(st.sampled_from([*ids, "zz"]), min_size=1, max_size=5)),
    }


def python_members(app: App, rule: MembershipRule, scope: Scope, ids: list[str]) -> dict[str, str]:
    with app.uow_factory() as uow:
        facts = uow.group_facts.load(ids)
    assert sorted(facts) == ids
    context = EvaluationContext(scope, NOW)
    decided = {user: rule.decide(app.registry, facts[user], context) for user in ids}
    return {user: reason for user, (admitted, reason) in decided.items() if admitted}


def stored(app: App) -> dict[str, str]:
    with app.uow_factory() as uow:
        return {m.user_id: m.reason for m in uow.memberships.members("g", limit=1000)}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_the_sql_evaluation_equals_the_python_evaluation(app: App, case: dict[str, Any]) -> None:
    ids = load(app, case["population"])
    registry = app.registry
    scope = Scope.parse(case["scope"])
    include, exclude = frozenset(case["include"]), frozenset(case["exclude"])

    def rule(document: dict[str, Any] | None) -> MembershipRule:
        return MembershipRule(None if document is None else registry.parse(document, scope), include, exclude)

    # A full refresh (at creation).
    create_group(
        "g",
        GroupDefinition(
            "g", case["scope"], criteria=case["first"], include=case["include"], exclude=case["exclude"]
        ),
        app.uow_factory(),
        registry,
        now=NOW,
    )
    first = python_members(app, rule(case["first"]), scope, ids)
    assert stored(app) == first
    with app.uow_factory() as uow:
        group = uow.groups.get("g")
    assert group is not None
    assert group.member_count == len(first)

    # A preview of other criteria: who would join and leave, and how many would be members.
    second = python_members(app, rule(case["second"]), scope, ids)
    preview = preview_group("g", app.uow_factory, registry, criteria=case["second"], sample=1000, now=NOW)
    assert preview.member_count == len(second)
    assert list(preview.joined_ids) == sorted(set(second) - set(first))
    assert list(preview.left_ids) == sorted(set(first) - set(second))
    assert (preview.joined, preview.left) == (len(preview.joined_ids), len(preview.left_ids))
    assert stored(app) == first

    # A refresh of a few users with a third tree: they follow it, the others stay.
    third = python_members(app, rule(case["third"]), scope, ids)
    few = set(case["few"])
    with app.uow_factory() as uow:
        group = uow.groups.get("g", for_update=True)
        assert group is not None
        result = uow.memberships.refresh(
            group, rule(case["third"]), EvaluationContext(scope, NOW), reason="test", only_users=case["few"]
        )
        uow.commit()
    expected = {u: r for u, r in first.items() if u not in few}
    expected |= {u: r for u, r in third.items() if u in few and u not in first}
    expected |= {u: r for u, r in first.items() if u in few and u in third}
    assert set(stored(app)) == set(expected)
    assert stored(app) == expected
    assert result.member_count == len(expected)
    assert (result.joined, result.left) == (
        len(set(expected) - set(first)),
        len(set(first) - set(expected)),
    )
