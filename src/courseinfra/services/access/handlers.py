"""API tokens: create and revoke them. The secret is shown once, at creation; only its hash is kept."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from courseinfra.domain.access import ApiToken, TokenNotFound, check_token_request, new_secret, secret_hash
from courseinfra.services.unit_of_work import UnitOfWork


def create_token(
    name: str,
    role: str,
    uow: UnitOfWork,
    *,
    pii: bool = False,
    expires_in_days: int | None = None,
    scope: str | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its secret (the only time the secret exists outside the client). ``scope``
    (``course:C`` or ``organisation:O``) limits a ``course_staff`` token, which needs one."""
    parsed, parsed_scope = check_token_request(name, role, expires_in_days, scope)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    secret = new_secret()
    token = ApiToken(
        token_id="tok_" + secrets.token_hex(8),
        name=name,
        role=parsed,
        pii=pii,
        secret_hash=secret_hash(secret),
        created_at=now,
        expires_at=None if expires_in_days is None else now + timedelta(days=expires_in_days),
        scope=parsed_scope,
    )
    with uow:
        uow.tokens.add(token)
        uow.note(
            "token.create",
            f"token:{token.token_id}",
            name=name,
            role=token.role.value,
            pii=pii,
            scope=None if token.scope is None else str(token.scope),
        )
        uow.commit()
    return token, secret


def revoke_token(token_id: str, uow: UnitOfWork, *, now: datetime | None = None) -> None:
    """Revoke a token at once: the next request with it is refused. :class:`TokenNotFound` if none."""
    with uow:
        if not uow.tokens.revoke(token_id, (now or datetime.now(UTC)).astimezone(UTC)):
            raise TokenNotFound(f"no token {token_id}")
        uow.note("token.revoke", f"token:{token_id}")
        uow.commit()
