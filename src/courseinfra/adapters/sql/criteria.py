"""Criteria compiled to SQL: each criterion type becomes a boolean expression over a ``users`` row, and
a whole tree becomes one ``WHERE`` clause, so that a group is evaluated by the database in one query.

A type without a compiler (a plugin that only gives a Python evaluation) is replaced by TRUE where it
stands under an even number of NOTs and by FALSE under an odd number: the query then returns a superset
of the members (the *candidates*), which the Python evaluation narrows. ``compile`` says whether the
expression is exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from courseinfra.adapters.sql.tables import user_activity_agg, user_enrolments, users
from courseinfra.domain.criteria import (
    AllOf,
    AnyOf,
    CompletionConfig,
    Criterion,
    EnrolmentConfig,
    EvaluationContext,
    LastLoginConfig,
    ManualConfig,
    ModeConfig,
    Node,
    ProfileConfig,
    ProgressConfig,
    ScopeKind,
)

Predicate = ColumnElement[bool]
SqlCompiler = Callable[[Criterion, EvaluationContext, str], Predicate]


def in_list(column: ColumnElement[Any], values: Collection[str], dialect: str) -> Predicate:
    """``column`` is one of ``values``, as one bound parameter whatever their number (an array on
    PostgreSQL, a JSON document read by ``json_each`` on SQLite), so that a list of 100k users neither
    exceeds SQLite's limit on parameters nor makes a new statement per size."""
    if not values:
        return sa.false()
    ordered = sorted(values)
    if dialect == "postgresql":
        return column == sa.any_(sa.literal(ordered, type_=postgresql.ARRAY(sa.String)))
    each = sa.func.json_each(sa.literal(json.dumps(ordered))).table_valued("value")
    return column.in_(sa.select(each.c.value))


def _course(config_course: str | None, context: EvaluationContext) -> str:
    if config_course:
        return config_course
    if context.scope.kind is ScopeKind.COURSE:
        return context.scope.key
    raise ValueError("course_id is required outside a course scope")


def _manual(criterion: Criterion, context: EvaluationContext, dialect: str) -> Predicate:
    config: ManualConfig = criterion.model  # type: ignore[assignment]
    return in_list(users.c.user_id, config.user_ids, dialect)


def _enrolled(config: EnrolmentConfig, context: EvaluationContext) -> Predicate:
    e = user_enrolments.alias("e")
    conditions = [
        e.c.userid == users.c.user_id,
        e.c.courseid == _course(config.course_id, context),
        e.c.active.is_(True),
    ]
    if config.modes is not None:
        conditions.append(e.c.mode.in_(config.modes) if config.modes else sa.false())
    if config.enrolled_from is not None:
        conditions.append(e.c.enrolleddate >= datetime.combine(config.enrolled_from, time(), UTC))
    if config.enrolled_until is not None:
        next_day = datetime.combine(config.enrolled_until, time(), UTC) + timedelta(days=1)
        conditions.append(e.c.enrolleddate < next_day)
    return sa.exists().where(*conditions)


def _course_enrolment(criterion: Criterion, context: EvaluationContext, dialect: str) -> Predicate:
    enrolled = _enrolled(criterion.model, context)  # type: ignore[arg-type]
    return enrolled if criterion.operator == "is" else sa.not_(enrolled)


def _enrolment_mode(criterion: Criterion, context: EvaluationContext, dialect: str) -> Predicate:
    config: ModeConfig = criterion.model  # type: ignore[assignment]
    e = user_enrolments.alias("e")
    in_mode = sa.exists().where(
        e.c.userid == users.c.user_id,
        e.c.courseid == _course(config.course_id, context),
        e.c.active.is_(True),
        e.c.mode.in_(config.modes),
    )
    return in_mode if criterion.operator == "in" else sa.not_(in_mode)


def _last_login(criterion: Criterion, context: EvaluationContext, dialect: str) -> Predicate:
    config: LastLoginConfig = criterion.model  # type: ignore[assignment]
    last = users.c.last_login_at
    if criterion.operator == "never":
        return last.is_(None)
    # In UTC: SQLite keeps timestamps as naive text in UTC, compared as text.
    cutoff = (context.now - timedelta(days=config.days)).astimezone(UTC)
    if criterion.operator == "within_days":
        return sa.and_(last.is_not(None), last >= cutoff)
    return sa.or_(last.is_(None), last < cutoff)


def _staff(criterion: Criterion, context: EvaluationContext, dialect: str) -> Predicate:
    return users.c.is_staff.is_(criterion.operator == "is_staff")


def _profile(criterion: Criterion, context: EvaluationContext, dialect: str) -> Predicate:
    config: ProfileConfig = criterion.model  # type: ignore[assignment]
    value: ColumnElement[Any] = users.c.profile[config.field].as_string()
    if criterion.operator == "exists":
        return value.is_not(None)
    # A missing field is SQL NULL, and NULL = 'x' is NULL, not false: NOT(...) would then leave out the
    # users without the field, which the Python evaluation admits. Hence the explicit IS NOT NULL.
    if criterion.operator == "equals":
        return sa.and_(value.is_not(None), value == config.value)
    return sa.and_(value.is_not(None), value.in_(config.values or []))


COMPARE: Mapping[str, Callable[[Any, int], Predicate]] = {
    "lt": lambda column, value: column < value,
    "le": lambda column, value: column <= value,
    "gt": lambda column, value: column > value,
    "ge": lambda column, value: column >= value,
    "eq": lambda column, value: column == value,
}


def _progress(criterion: Criterion, context: EvaluationContext, dialect: str) -> Predicate:
    config: ProgressConfig = criterion.model  # type: ignore[assignment]
    e = user_enrolments.alias("e")
    return sa.exists().where(
        e.c.userid == users.c.user_id,
        e.c.batchid == config.batch_id,
        e.c.active.is_(True),
        COMPARE[criterion.operator](e.c.completionpercentage, config.value),
    )


def _completion(criterion: Criterion, context: EvaluationContext, dialect: str) -> Predicate:
    config: CompletionConfig = criterion.model  # type: ignore[assignment]
    if config.kind == "unit":
        a = user_activity_agg.alias("a")
        done = sa.exists().where(
            a.c.activity_type == "CourseUnit",
            a.c.activity_id == config.content_id,
            a.c.user_id == users.c.user_id,
            a.c.context_id == f"cb:{config.batch_id}",
            a.c.agg["progress"].as_integer() >= 100,
        )
    else:
        e = user_enrolments.alias("e")
        done = sa.exists().where(
            e.c.userid == users.c.user_id,
            e.c.batchid == config.batch_id,
            e.c.contentstatus[config.content_id].as_integer() >= 2,
        )
    return done if criterion.operator == "completed" else sa.not_(done)


SHIPPED_COMPILERS: dict[str, SqlCompiler] = {
    "manual": _manual,
    "course_enrolment": _course_enrolment,
    "enrolment_mode": _enrolment_mode,
    "last_login": _last_login,
    "staff_status": _staff,
    "profile_field": _profile,
    "course_progress": _progress,
    "content_completion": _completion,
}


class CriteriaCompiler:
    """Compiles trees with the compilers it knows; plugins add theirs with :meth:`register`."""

    def __init__(self, compilers: Mapping[str, SqlCompiler] = SHIPPED_COMPILERS) -> None:
        self.compilers = dict(compilers)

    def register(self, type_name: str, compiler: SqlCompiler) -> None:
        self.compilers[type_name] = compiler

    def compile(self, node: Node, context: EvaluationContext, dialect: str) -> tuple[Predicate, bool]:
        """The tree as one predicate over ``users``, and whether it is exact (every leaf compiled)."""
        exact = True

        def walk(current: Node, positive: bool) -> Predicate:
            nonlocal exact
            if isinstance(current, Criterion):
                compiler = self.compilers.get(current.type)
                if compiler is None:
                    exact = False
                    return sa.true() if positive else sa.false()
                return compiler(current, context, dialect)
            if isinstance(current, AllOf):
                return sa.and_(*(walk(child, positive) for child in current.children))
            if isinstance(current, AnyOf):
                return sa.or_(*(walk(child, positive) for child in current.children))
            return sa.not_(walk(current.child, not positive))

        predicate = walk(node, True)
        return predicate, exact
