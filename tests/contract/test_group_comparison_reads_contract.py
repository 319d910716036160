"""The reads that compare a user group with another set of users (a linked group with its legacy group,
a preview with the stored membership), on SQLite and on PostgreSQL: the ids the directory has among
many, every member's id, and a preview's counts and samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.criteria import CriteriaRegistry, EvaluationContext, MembershipRule, Scope
from courseinfra.domain.groups import UserGroup
from courseinfra.domain.users import User
from courseinfra.services.groups.ports import RefreshResult
from tests.support.stores import OnPostgres, OnSqlite

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
REGISTRY = CriteriaRegistry()
NORTH = {"type": "profile_field", "operator": "equals", "config": {"field": "district", "value": "north"}}


def north_group(engine: sa.Engine) -> None:
    """u1, u2, u4 in the north, u3 in the south; the ``north`` group refreshed (u1, u2, u4), and an
    ``other`` group holding u3 only."""
    with SqlUnitOfWork(engine) as uow:
        districts = (("u1", "north"), ("u2", "north"), ("u3", "south"), ("u4", "north"))
        uow.users.upsert_many([User(u, profile={"district": d}) for u, d in districts], T0)
        for group_id, criteria, include in (("north", NORTH, ()), ("other", None, ("u3",))):
            scope = Scope.parse("instance")
            group = UserGroup(
                group_id=group_id,
                name=group_id,
                scope=scope,
                created_at=T0,
                updated_at=T0,
                criteria=None if criteria is None else REGISTRY.parse(criteria, scope),
            )
            uow.groups.add(group)
            rule = MembershipRule(group.criteria, frozenset(include), frozenset())
            uow.memberships.refresh(group, rule, EvaluationContext(scope, T0), reason="on-demand")
        uow.commit()


def preview(engine: sa.Engine, rule: MembershipRule, sample: int = 100) -> RefreshResult:
    with SqlUnitOfWork(engine) as uow:
        stored = uow.groups.get("north")
        assert stored is not None
        return uow.memberships.preview(
            stored, rule, EvaluationContext(stored.scope, T0 + timedelta(days=1)), sample=sample
        )


class ComparisonReadsContract:
    """Subclasses provide the ``engine`` fixture, migrated and empty."""

    def test_known_is_the_ids_the_directory_has_among_many(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User(f"user-{n:05d}") for n in range(0, 3000, 3)], T0)
            uow.commit()
        asked = {f"user-{n:05d}" for n in range(3000)} | {"nobody", "o'hara", 'quote"d'}
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.users.known(asked) == {f"user-{n:05d}" for n in range(0, 3000, 3)}
            assert uow.users.known(["user-00003", "user-00004"]) == {"user-00003"}
            assert uow.users.known([]) == set()

    def test_member_ids_are_every_member_of_the_group_only(self, engine: sa.Engine) -> None:
        north_group(engine)
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.memberships.member_ids("north") == {"u1", "u2", "u4"}
            assert uow.memberships.member_ids("other") == {"u3"}
            assert uow.memberships.member_ids("none") == set()

    def test_a_preview_counts_joins_and_leaves_beside_the_members_it_keeps(self, engine: sa.Engine) -> None:
        north_group(engine)
        stored_rule = MembershipRule(REGISTRY.parse(NORTH, Scope.parse("instance")), frozenset(), frozenset())
        # The stored criteria: nobody joins or leaves, and no sample is read.
        assert preview(engine, stored_rule) == RefreshResult(0, 0, 3)
        # u3 included, u1 and u4 excluded: one joins, two leave, u2 stays; the samples are capped.
        changed = MembershipRule(stored_rule.criteria, frozenset({"u3"}), frozenset({"u1", "u4"}))
        assert preview(engine, changed) == RefreshResult(1, 2, 2, ("u3",), ("u1", "u4"))
        assert preview(engine, changed, sample=1) == RefreshResult(1, 2, 2, ("u3",), ("u1",))
        assert preview(engine, changed, sample=0) == RefreshResult(1, 2, 2)
        # No criteria and no include list: every member leaves.
        assert preview(engine, MembershipRule(None, frozenset(), frozenset())) == RefreshResult(
            0, 3, 0, (), ("u1", "u2", "u4")
        )
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.memberships.member_ids("north") == {"u1", "u2", "u4"}, "a preview writes nothing"


class TestSqliteComparisonReads(OnSqlite, ComparisonReadsContract):
    pass


class TestPostgresComparisonReads(OnPostgres, ComparisonReadsContract):
    pass
