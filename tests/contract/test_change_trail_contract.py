"""One contract for the store of the change trail, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.trail import Actor, Change
from tests.support.stores import OnPostgres, OnSqlite

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
ADMIN = Actor("tok_1", "admin", "api", "10.0.0.7")
CLI = Actor("cli:ops", "admin", "cli", "host-1")


class ChangeTrailContract:
    """Subclasses provide the ``engine`` fixture, migrated and empty."""

    def add(self, engine: sa.Engine, actor: Actor, *changes: Change, at: datetime = T0) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.trail.add(changes, actor, at)
            uow.commit()

    def test_changes_come_back_in_order_with_their_actor_and_detail(self, engine: sa.Engine) -> None:
        ist = timezone(timedelta(hours=5, minutes=30))
        self.add(
            engine, ADMIN, Change("group.create", "group:g1", {"scope": "instance"}), at=T0.astimezone(ist)
        )
        self.add(engine, CLI, Change("token.revoke", "token:t1"), Change("group.delete", "group:g1"))
        with SqlUnitOfWork(engine, read_only=True) as uow:
            found = uow.trail.list()
        assert [(r.change.action, r.actor) for r in found] == [
            ("group.create", ADMIN),
            ("token.revoke", CLI),
            ("group.delete", CLI),
        ]
        assert found[0].change.detail == {"scope": "instance"}
        assert found[1].change.detail == {}
        assert found[0].at == T0
        assert found[0].at.tzinfo is not None
        assert found[0].change_id < found[1].change_id < found[2].change_id

    def test_changes_are_filtered_and_paged(self, engine: sa.Engine) -> None:
        self.add(engine, ADMIN, Change("group.create", "group:g1"), Change("group_x.odd", "group:g2"))
        self.add(engine, CLI, Change("group.update", "group:g1"), Change("users.import", "users"))
        with SqlUnitOfWork(engine, read_only=True) as uow:
            everything = uow.trail.list()
            by_target = uow.trail.list(target="group:g1")
            by_actor = uow.trail.list(subject="cli:ops")
            # "_" and "%" are characters here, not LIKE wildcards.
            by_prefix = uow.trail.list(action_prefix="group.")
            wildcard = uow.trail.list(action_prefix="group_")
            page = uow.trail.list(after_id=everything[1].change_id, limit=1)
        assert [r.change.action for r in by_target] == ["group.create", "group.update"]
        assert [r.change.action for r in by_actor] == ["group.update", "users.import"]
        assert [r.change.action for r in by_prefix] == ["group.create", "group.update"]
        assert [r.change.action for r in wildcard] == ["group_x.odd"]
        assert [r.change_id for r in page] == [everything[2].change_id]

    def test_a_change_rolled_back_leaves_no_trail(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.note("group.create", "group:g1")
        with SqlUnitOfWork(engine) as uow:
            uow.note("group.create", "group:g2")
            uow.commit()
        with SqlUnitOfWork(engine, read_only=True) as uow:
            assert [r.change.target for r in uow.trail.list()] == ["group:g2"]


class TestSqliteChangeTrail(OnSqlite, ChangeTrailContract):
    pass


class TestPostgresChangeTrail(OnPostgres, ChangeTrailContract):
    pass
