"""The criteria tree without a database: parsing (every error names its path), the JSON round trip, the
facts a tree reads, explanations, the membership rule, scopes and differences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from courseinfra.domain.criteria import (
    AllOf,
    AnyOf,
    CriteriaRegistry,
    Criterion,
    EnrolmentFacts,
    EvaluationContext,
    Fact,
    InvalidCriteria,
    MembershipRule,
    Not,
    Scope,
    ScopeKind,
    UserFacts,
    criteria_json,
    diff,
    leaves,
    normalise_user_ids,
)
from courseinfra.domain.users import User

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
INSTANCE = Scope(ScopeKind.INSTANCE)
COURSE = Scope(ScopeKind.COURSE, "c1")
REGISTRY = CriteriaRegistry()


def ctx(scope: Scope = INSTANCE) -> EvaluationContext:
    return EvaluationContext(scope, NOW)


def leaf(type_: str, operator: str, **config: Any) -> dict[str, Any]:
    return {"type": type_, "operator": operator, "config": config}


def enrolment(
    course: str = "c1",
    batch: str = "b1",
    *,
    active: bool = True,
    mode: str = "audit",
    on: datetime = NOW,
    percent: int = 0,
    status: dict[str, int] | None = None,
) -> EnrolmentFacts:
    return EnrolmentFacts(course, batch, active, mode, on, percent, status or {})


def facts(user_id: str = "u1", *enrolments: EnrolmentFacts, **fields: Any) -> UserFacts:
    units = fields.pop("units", {})
    return UserFacts(User(user_id, **fields), tuple(enrolments), units)


# --- parsing errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "scope", "message"),
    [
        ([], INSTANCE, "criteria: expected an object, got list"),
        ({"and": []}, INSTANCE, "criteria.and: expected a non-empty list"),
        ({"or": []}, INSTANCE, "criteria.or: expected a non-empty list"),
        ({"or": {"type": "staff_status"}}, INSTANCE, "criteria.or: expected a non-empty list"),
        ({"and": [{"type": "staff_status"}], "or": []}, INSTANCE, "criteria: expected {and"),
        ({"operator": "is"}, INSTANCE, "criteria: expected {and"),
        ({"type": "staff_status", "extra": 1}, INSTANCE, "criteria: expected {and"),
        (
            {"and": [leaf("staff_status", "is_staff"), {"type": "nope"}]},
            INSTANCE,
            "criteria.and[1].type: unknown criterion type 'nope'",
        ),
        ({"type": 3}, INSTANCE, "criteria.type: unknown criterion type 3"),
        (
            {"not": {"or": [leaf("staff_status", "is_staff"), leaf("staff_status", "maybe")]}},
            INSTANCE,
            "criteria.not.or[1].operator: staff_status takes is_staff, is_not_staff, not 'maybe'",
        ),
        (
            {"and": [leaf("last_login", "within_days", days=-1)]},
            INSTANCE,
            "criteria.and[0].config.days:",
        ),
        (leaf("last_login", "within_days", hours=3), INSTANCE, "criteria.config.hours:"),
        (leaf("staff_status", "is_staff", x=1), INSTANCE, "criteria.config.x:"),
        (leaf("course_progress", "lt", batch_id="b1", value=101), INSTANCE, "criteria.config.value:"),
        (leaf("course_progress", "lt", value=10), INSTANCE, "criteria.config.batch_id:"),
        (
            leaf("content_completion", "completed", batch_id="b", content_id="x", kind="module"),
            INSTANCE,
            "criteria.config.kind:",
        ),
        (
            leaf("content_completion", "completed", batch_id="b", content_id='a"b'),
            INSTANCE,
            "criteria.config.content_id:",
        ),
        (leaf("profile_field", "exists", field="a\\b"), INSTANCE, "criteria.config.field:"),
        (leaf("enrolment_mode", "in", course_id="c1", modes=[]), INSTANCE, "criteria.config.modes:"),
        ({"type": "manual", "config": "u1"}, INSTANCE, "criteria.config: "),
        (
            {"or": [leaf("staff_status", "is_staff"), leaf("course_enrolment", "is")]},
            INSTANCE,
            "criteria.or[1].config.course_id: required outside a course scope",
        ),
        (
            {"not": leaf("enrolment_mode", "in", modes=["audit"])},
            Scope(ScopeKind.ORGANISATION, "o1"),
            "criteria.not.config.course_id: required outside a course scope",
        ),
        (
            {"and": [leaf("profile_field", "equals", field="district")]},
            INSTANCE,
            "criteria.and[0].config.value: required by equals",
        ),
        (
            leaf("profile_field", "in", field="district", values=[]),
            INSTANCE,
            "criteria.config.values: required by in",
        ),
    ],
)
def test_every_parse_error_names_its_path(document: Any, scope: Scope, message: str) -> None:
    with pytest.raises(InvalidCriteria) as raised:
        REGISTRY.parse(document, scope)
    assert str(raised.value).startswith(message), str(raised.value)
    assert raised.value.code == "invalid-criteria"


def test_a_custom_root_path_prefixes_every_message() -> None:
    with pytest.raises(InvalidCriteria, match=r"^body\.rules\.and\[0\]\.type: unknown"):
        REGISTRY.parse({"and": [{"type": "x"}]}, INSTANCE, "body.rules")


def test_course_criteria_take_the_course_of_a_course_scope() -> None:
    node = REGISTRY.parse(leaf("course_enrolment", "is"), COURSE)
    assert isinstance(node, Criterion)
    assert node.config == {}
    inside = facts("u1", enrolment("c1"))
    elsewhere = facts("u2", enrolment("c2"))
    assert REGISTRY.holds(node, inside, ctx(COURSE))
    assert not REGISTRY.holds(node, elsewhere, ctx(COURSE))
    # Evaluated outside the scope it was parsed in, it has no course: an error, not a silent False.
    with pytest.raises(InvalidCriteria, match="course_id is required"):
        REGISTRY.holds(node, inside, ctx(INSTANCE))


def test_the_operator_defaults_to_the_first_and_the_config_to_empty() -> None:
    node = REGISTRY.parse({"type": "staff_status"}, INSTANCE)
    assert node == Criterion("staff_status", "is_staff", {}, node.model)  # type: ignore[union-attr]


# --- the JSON form -------------------------------------------------------------------------------------

TREE: dict[str, Any] = {
    "and": [
        leaf("course_enrolment", "is", course_id="c1", modes=["audit"], enrolled_from="2026-01-01"),
        {
            "or": [
                leaf("last_login", "within_days", days=7),
                {"not": leaf("profile_field", "in", field="district", values=["N", "S"])},
                leaf("content_completion", "completed", batch_id="b1", kind="unit", content_id="u1"),
            ]
        },
        {"not": {"not": leaf("manual", "in", user_ids=["u1", "u2"])}},
        leaf("course_progress", "ge", batch_id="b1", value=50),
        leaf("enrolment_mode", "not_in", course_id="c2", modes=["verified"]),
        leaf("staff_status", "is_not_staff"),
    ]
}


def test_criteria_json_round_trips_with_defaults_filled_and_nones_dropped() -> None:
    node = REGISTRY.parse(TREE, INSTANCE)
    document = criteria_json(node)
    assert REGISTRY.parse(document, INSTANCE) == node
    assert criteria_json(REGISTRY.parse(document, INSTANCE)) == document
    first = document["and"][0]
    assert first == {
        "type": "course_enrolment",
        "operator": "is",
        "config": {"course_id": "c1", "modes": ["audit"], "enrolled_from": "2026-01-01"},
    }
    assert document["and"][1]["or"][2]["config"] == {"batch_id": "b1", "kind": "unit", "content_id": "u1"}
    assert document["and"][5]["config"] == {}
    assert isinstance(node, AllOf)
    assert isinstance(node.children[1], AnyOf)
    assert isinstance(node.children[2], Not)
    assert [c.type for c in leaves(node)] == [
        "course_enrolment",
        "last_login",
        "profile_field",
        "content_completion",
        "manual",
        "course_progress",
        "enrolment_mode",
        "staff_status",
    ]


def test_facts_of_names_every_fact_the_tree_reads_and_no_other() -> None:
    assert REGISTRY.facts_of(REGISTRY.parse(TREE, INSTANCE)) == frozenset(Fact)
    assert REGISTRY.facts_of(REGISTRY.parse(leaf("last_login", "never"), INSTANCE)) == {Fact.LOGIN}
    assert REGISTRY.facts_of(
        REGISTRY.parse(leaf("course_progress", "lt", batch_id="b", value=1), INSTANCE)
    ) == {Fact.PROGRESS, Fact.ENROLMENT}
    assert REGISTRY.facts_of(
        REGISTRY.parse(
            {"not": {"or": [leaf("staff_status", "is_staff"), leaf("profile_field", "exists", field="x")]}},
            INSTANCE,
        )
    ) == {Fact.DIRECTORY, Fact.PROFILE}
    assert REGISTRY.facts_of(
        REGISTRY.parse(leaf("content_completion", "completed", batch_id="b", content_id="x"), INSTANCE)
    ) == {Fact.PROGRESS}


# --- evaluation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criterion", "user", "expected"),
    [
        (leaf("last_login", "within_days", days=2), facts(last_login_at=NOW - timedelta(days=2)), True),
        (
            leaf("last_login", "within_days", days=2),
            facts(last_login_at=NOW - timedelta(days=2, seconds=1)),
            False,
        ),
        (leaf("last_login", "within_days", days=2), facts(), False),
        (leaf("last_login", "not_within_days", days=2), facts(), True),
        (
            leaf("last_login", "not_within_days", days=2),
            facts(last_login_at=NOW - timedelta(days=3)),
            True,
        ),
        (leaf("last_login", "never", days=5), facts(last_login_at=NOW - timedelta(days=9)), False),
        (leaf("last_login", "never"), facts(), True),
        (leaf("profile_field", "equals", field="d", value="N"), facts(profile={"d": "N"}), True),
        (leaf("profile_field", "equals", field="d", value="N"), facts(profile={"d": "S"}), False),
        (leaf("profile_field", "in", field="d", values=["N", "S"]), facts(profile={"d": "S"}), True),
        (leaf("profile_field", "in", field="d", values=["N"]), facts(), False),
        (leaf("profile_field", "exists", field="d"), facts(profile={"d": ""}), True),
        (leaf("profile_field", "exists", field="e"), facts(profile={"d": "x"}), False),
        (leaf("staff_status", "is_staff"), facts(is_staff=True), True),
        (leaf("staff_status", "is_not_staff"), facts(is_staff=True), False),
        (leaf("manual", "in", user_ids=["u1", "u9"]), facts("u1"), True),
        (leaf("manual", "in", user_ids=["u9"]), facts("u1"), False),
        (leaf("course_enrolment", "is", course_id="c1"), facts("u1", enrolment(active=False)), False),
        (leaf("course_enrolment", "is_not", course_id="c1"), facts("u1", enrolment(active=False)), True),
        (
            leaf("course_enrolment", "is", course_id="c1", modes=["verified"]),
            facts("u1", enrolment(mode="audit"), enrolment(batch="b2", mode="verified")),
            True,
        ),
        (
            leaf("course_enrolment", "is", course_id="c1", enrolled_until="2026-03-01"),
            facts("u1", enrolment(on=datetime(2026, 3, 1, 23, 59, tzinfo=UTC))),
            True,
        ),
        (
            leaf("course_enrolment", "is", course_id="c1", enrolled_from="2026-03-02"),
            facts("u1", enrolment(on=datetime(2026, 3, 1, 23, 59, tzinfo=UTC))),
            False,
        ),
        (leaf("enrolment_mode", "in", course_id="c1", modes=["audit"]), facts("u1", enrolment()), True),
        (
            leaf("enrolment_mode", "not_in", course_id="c1", modes=["audit"]),
            facts("u1", enrolment(active=False)),
            True,
        ),
        (
            leaf("course_progress", "le", batch_id="b1", value=40),
            facts("u1", enrolment(percent=40)),
            True,
        ),
        (
            leaf("course_progress", "lt", batch_id="b1", value=40),
            facts("u1", enrolment(percent=40)),
            False,
        ),
        (
            leaf("course_progress", "eq", batch_id="b1", value=0),
            facts("u1", enrolment(percent=0, active=False)),
            False,
        ),
        (leaf("course_progress", "lt", batch_id="b1", value=40), facts("u1"), False),
        (
            leaf("content_completion", "completed", batch_id="b1", content_id="r1"),
            facts("u1", enrolment(status={"r1": 2})),
            True,
        ),
        (
            leaf("content_completion", "completed", batch_id="b1", content_id="r1"),
            facts("u1", enrolment(status={"r1": 1})),
            False,
        ),
        (
            leaf("content_completion", "not_completed", batch_id="b2", content_id="r1"),
            facts("u1", enrolment(status={"r1": 2})),
            True,
        ),
        (
            leaf("content_completion", "completed", batch_id="b1", kind="unit", content_id="m1"),
            facts("u1", units={("b1", "m1"): 100}),
            True,
        ),
        (
            leaf("content_completion", "completed", batch_id="b1", kind="unit", content_id="m1"),
            facts("u1", units={("b1", "m1"): 99, ("b2", "m1"): 100}),
            False,
        ),
    ],
)
def test_each_type_holds_as_specified(criterion: dict[str, Any], user: UserFacts, expected: bool) -> None:
    node = REGISTRY.parse(criterion, INSTANCE)
    assert REGISTRY.holds(node, user, ctx()) is expected


def test_explain_gives_every_nodes_outcome() -> None:
    node = REGISTRY.parse(
        {
            "or": [
                leaf("staff_status", "is_staff"),
                {"not": leaf("profile_field", "equals", field="d", value="N")},
                {"and": [leaf("last_login", "never"), leaf("manual", "in", user_ids=["u1"])]},
            ]
        },
        INSTANCE,
    )
    explained = REGISTRY.explain(node, facts("u1", profile={"d": "N"}), ctx())
    assert explained == {
        "or": [
            {
                "type": "staff_status",
                "operator": "is_staff",
                "config": {},
                "holds": False,
                "value": False,
                "compared_to": None,
            },
            {
                "not": {
                    "type": "profile_field",
                    "operator": "equals",
                    "config": {"field": "d", "value": "N"},
                    "holds": True,
                    "value": "N",
                    "compared_to": "N",
                },
                "holds": False,
            },
            {
                "and": [
                    {
                        "type": "last_login",
                        "operator": "never",
                        "config": {"days": 0},
                        "holds": True,
                        "value": None,
                        "compared_to": None,
                    },
                    {
                        "type": "manual",
                        "operator": "in",
                        "config": {"user_ids": ["u1"]},
                        "holds": True,
                        "value": "u1",
                        "compared_to": None,
                    },
                ],
                "holds": True,
            },
        ],
        "holds": True,
    }
    other = REGISTRY.explain(node, facts("u2", profile={"d": "N"}, last_login_at=NOW), ctx())
    assert other["holds"] is False
    assert [child["holds"] for child in other["or"]] == [False, False, False]
    assert [c["holds"] for c in other["or"][2]["and"]] == [False, False]


LEARNER = facts(
    "u1",
    enrolment("c1", "b1", percent=33, mode="verified", on=NOW - timedelta(days=3), status={"r1": 2, "r2": 1}),
    enrolment("c1", "old", active=False, percent=90),
    last_login_at=NOW - timedelta(days=2),
    profile={"d": "N"},
    units={("b1", "m1"): 50},
)
NEWCOMER = facts("u2")


@pytest.mark.parametrize(
    ("criterion", "scope", "learner", "newcomer"),
    [
        (leaf("course_progress", "lt", batch_id="b1", value=30), INSTANCE, (33, 30), (None, 30)),
        (leaf("course_progress", "ge", batch_id="old", value=50), INSTANCE, (None, 50), (None, 50)),
        (
            leaf("course_enrolment", "is", modes=["verified"]),
            COURSE,
            (
                [{"batch_id": "b1", "mode": "verified", "enrolled_on": "2026-02-26"}],
                {"course_id": "c1", "modes": ["verified"]},
            ),
            (None, {"course_id": "c1", "modes": ["verified"]}),
        ),
        (leaf("enrolment_mode", "in", modes=["audit"]), COURSE, (["verified"], ["audit"]), (None, ["audit"])),
        (
            leaf("last_login", "within_days", days=7),
            INSTANCE,
            ((NOW - timedelta(days=2)).isoformat(), (NOW - timedelta(days=7)).isoformat()),
            (None, (NOW - timedelta(days=7)).isoformat()),
        ),
        (
            leaf("profile_field", "in", field="d", values=["S", "E"]),
            INSTANCE,
            ("N", ["S", "E"]),
            (None, ["S", "E"]),
        ),
        (leaf("profile_field", "exists", field="d"), INSTANCE, ("N", None), (None, None)),
        (
            leaf("content_completion", "completed", batch_id="b1", content_id="r2"),
            INSTANCE,
            (1, 2),
            (None, 2),
        ),
        (
            leaf("content_completion", "completed", batch_id="b1", kind="unit", content_id="m1"),
            INSTANCE,
            (50, 100),
            (None, 100),
        ),
        (leaf("staff_status", "is_not_staff"), INSTANCE, (False, None), (False, None)),
    ],
)
def test_explain_shows_the_value_read_beside_the_value_compared(
    criterion: dict[str, Any], scope: Scope, learner: tuple[Any, Any], newcomer: tuple[Any, Any]
) -> None:
    """Progress 33 against lt 30 says 33 and 30, not only that it does not hold; a user with nothing to
    read (no enrolment in the batch, an inactive one, no such field) reads null."""
    node = REGISTRY.parse(criterion, scope)
    for user, (value, compared_to) in ((LEARNER, learner), (NEWCOMER, newcomer)):
        explained = REGISTRY.explain(node, user, ctx(scope))
        assert (explained["value"], explained["compared_to"]) == (value, compared_to), user.user.user_id
        assert explained["holds"] is REGISTRY.holds(node, user, ctx(scope))


# --- the membership rule -------------------------------------------------------------------------------

STAFF = REGISTRY.parse(leaf("staff_status", "is_staff"), INSTANCE)


@pytest.mark.parametrize(
    ("rule", "user", "expected"),
    [
        (MembershipRule(STAFF), facts("u1", is_staff=True), (True, "criteria")),
        (MembershipRule(STAFF), facts("u1"), (False, "not-matched")),
        (MembershipRule(STAFF, include=frozenset({"u1"})), facts("u1"), (True, "included")),
        (
            MembershipRule(STAFF, include=frozenset({"u1"})),
            facts("u1", is_staff=True),
            (True, "included"),
        ),
        (
            MembershipRule(STAFF, exclude=frozenset({"u1"})),
            facts("u1", is_staff=True),
            (False, "excluded"),
        ),
        (
            MembershipRule(STAFF, include=frozenset({"u1"}), exclude=frozenset({"u1"})),
            facts("u1", is_staff=True),
            (False, "excluded"),
        ),
        (MembershipRule(None), facts("u1", is_staff=True), (False, "not-matched")),
        (MembershipRule(None, include=frozenset({"u1"})), facts("u1"), (True, "included")),
        (MembershipRule(STAFF, include=frozenset({"u2"})), facts("u1"), (False, "not-matched")),
    ],
)
def test_exclude_beats_include_beats_criteria(
    rule: MembershipRule, user: UserFacts, expected: tuple[bool, str]
) -> None:
    assert rule.decide(REGISTRY, user, ctx()) == expected


# --- scopes and differences ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scope", "shown"),
    [
        ("instance", Scope(ScopeKind.INSTANCE), "instance"),
        (" instance ", Scope(ScopeKind.INSTANCE), "instance"),
        ("organisation:o1", Scope(ScopeKind.ORGANISATION, "o1"), "organisation:o1"),
        ("course: do_1:x ", Scope(ScopeKind.COURSE, "do_1:x"), "course:do_1:x"),
    ],
)
def test_scope_parse_reads_the_three_kinds(text: str, scope: Scope, shown: str) -> None:
    assert Scope.parse(text) == scope
    assert str(Scope.parse(text)) == shown
    assert Scope.parse(str(scope)) == scope


@pytest.mark.parametrize(
    "text", ["", "course", "course:", "instance:x", "org:o1", "Course:c1", "organisation: "]
)
def test_scope_parse_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidCriteria) as raised:
        Scope.parse(text)
    assert raised.value.code == "invalid-scope"
    assert repr(text) in str(raised.value)


def test_diff_gives_sorted_joins_and_leaves() -> None:
    assert diff(["c", "a", "b"], ["d", "b", "a", "e"]) == (["d", "e"], ["c"])
    assert diff([], ["b", "a"]) == (["a", "b"], [])
    assert diff(["b", "a", "a"], []) == ([], ["a", "b"])
    assert diff(["x"], ["x"]) == ([], [])


def test_normalise_user_ids_strips_dedupes_and_sorts() -> None:
    assert normalise_user_ids([" b", "a", "", "  ", "b ", "a"]) == ["a", "b"]
