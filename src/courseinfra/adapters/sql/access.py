"""The SQL store of API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from courseinfra.adapters.sql.store import upsert
from courseinfra.adapters.sql.tables import api_tokens
from courseinfra.domain.access import AccessScope, ApiToken, Role
from courseinfra.services.access.ports import TokenStore
from courseinfra.services.unit_of_work import AlreadyExists


def _token(row: Any) -> ApiToken:
    return ApiToken(
        token_id=row.token_id,
        name=row.name,
        role=Role(row.role),
        pii=bool(row.pii),
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        scope=None if row.scope is None else AccessScope.parse(row.scope),
    )


class SqlTokenStore(TokenStore):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def add(self, token: ApiToken) -> None:
        # ON CONFLICT DO NOTHING rather than a savepoint (see SqlUserGroupStore.add).
        inserted = self.connection.execute(
            upsert(self.connection, api_tokens)
            .values(
                token_id=token.token_id,
                name=token.name,
                role=token.role.value,
                pii=token.pii,
                secret_hash=token.secret_hash,
                created_at=token.created_at,
                expires_at=token.expires_at,
                revoked_at=token.revoked_at,
                scope=None if token.scope is None else str(token.scope),
            )
            .on_conflict_do_nothing()
            .returning(api_tokens.c.token_id)
        ).first()
        if inserted is None:
            raise AlreadyExists(f"token {token.token_id} (or its secret) exists")

    def by_secret_hash(self, secret_hash: str) -> ApiToken | None:
        row = self.connection.execute(
            sa.select(api_tokens).where(api_tokens.c.secret_hash == secret_hash)
        ).first()
        return None if row is None else _token(row)

    def get(self, token_id: str) -> ApiToken | None:
        row = self.connection.execute(sa.select(api_tokens).where(api_tokens.c.token_id == token_id)).first()
        return None if row is None else _token(row)

    def list(self) -> list[ApiToken]:
        rows = self.connection.execute(
            sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.token_id)
        )
        return [_token(row) for row in rows]

    def revoke(self, token_id: str, at: datetime) -> bool:
        t = api_tokens.c
        done = self.connection.execute(
            api_tokens.update().where(t.token_id == token_id, t.revoked_at.is_(None)).values(revoked_at=at)
        )
        if done.rowcount:
            return True
        return self.get(token_id) is not None
