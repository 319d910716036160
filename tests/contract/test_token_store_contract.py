"""One contract for the store of API tokens, on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.access import ApiToken, Role, new_secret, secret_hash
from courseinfra.services.unit_of_work import AlreadyExists
from tests.support.stores import OnPostgres, OnSqlite

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def token(token_id: str, at: datetime = T0, **fields: object) -> ApiToken:
    values: dict[str, object] = {
        "token_id": token_id,
        "name": f"name of {token_id}",
        "role": Role.READER,
        "pii": False,
        "secret_hash": secret_hash(new_secret()),
        "created_at": at,
        **fields,
    }
    return ApiToken(**values)  # type: ignore[arg-type]


class TokenStoreContract:
    """Subclasses provide the ``engine`` fixture, migrated and empty."""

    def test_a_token_is_found_by_the_hash_of_its_secret_and_by_its_id(self, engine: sa.Engine) -> None:
        ist = timezone(timedelta(hours=5, minutes=30))
        added = token("t1", role=Role.OPERATOR, pii=True, expires_at=datetime(2026, 2, 1, 12, tzinfo=ist))
        with SqlUnitOfWork(engine) as uow:
            uow.tokens.add(added)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.tokens.by_secret_hash(added.secret_hash) == added
            assert uow.tokens.get("t1") == added
            assert uow.tokens.by_secret_hash(secret_hash("cit_other")) is None
            assert uow.tokens.get("t2") is None
            found = uow.tokens.get("t1")
        assert found is not None
        assert found.expires_at is not None
        assert found.expires_at.utcoffset() == timedelta(0), "kept in UTC, the same instant"

    def test_an_id_or_a_secret_hash_is_taken_once(self, engine: sa.Engine) -> None:
        first = token("t1")
        with SqlUnitOfWork(engine) as uow:
            uow.tokens.add(first)
            with pytest.raises(AlreadyExists):
                uow.tokens.add(token("t1"))
            with pytest.raises(AlreadyExists):
                uow.tokens.add(token("t2", secret_hash=first.secret_hash))
            uow.tokens.add(token("t3"))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert [t.token_id for t in uow.tokens.list()] == ["t1", "t3"]

    def test_list_gives_every_token_by_creation_time(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.tokens.add(token("b", T0 + timedelta(minutes=1)))
            uow.tokens.add(token("c", T0))
            uow.tokens.add(token("a", T0 + timedelta(minutes=2)))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert [t.token_id for t in uow.tokens.list()] == ["c", "b", "a"]

    def test_a_revocation_keeps_its_first_time(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.tokens.add(token("t1"))
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.tokens.revoke("t1", T0 + timedelta(hours=1)) is True
            assert uow.tokens.revoke("t1", T0 + timedelta(hours=2)) is True
            assert uow.tokens.revoke("nope", T0) is False
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            revoked = uow.tokens.get("t1")
        assert revoked is not None
        assert revoked.revoked_at == T0 + timedelta(hours=1)
        assert not revoked.valid_at(T0 + timedelta(hours=3))
        assert replace(revoked, revoked_at=None).valid_at(T0 + timedelta(hours=3))

    def test_leaving_without_commit_keeps_no_token(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.tokens.add(token("t1"))
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.tokens.list() == []


class TestSqliteTokenStore(OnSqlite, TokenStoreContract):
    pass


class TestPostgresTokenStore(OnPostgres, TokenStoreContract):
    pass
