"""Who a bearer secret acts for, and the tokens an administrator lists."""

from __future__ import annotations

from datetime import UTC, datetime

from courseinfra.domain.access import ApiToken, Principal, Unauthenticated, secret_hash
from courseinfra.services.unit_of_work import UowFactory


def authenticate(secret: str, uow_factory: UowFactory, *, now: datetime | None = None) -> Principal:
    """The principal of a bearer secret; :class:`Unauthenticated` for an unknown, revoked or expired
    one (the same answer for each, so that a caller learns nothing of which)."""
    with uow_factory().reading() as uow:
        token = uow.tokens.by_secret_hash(secret_hash(secret))
    if token is None or not token.valid_at((now or datetime.now(UTC)).astimezone(UTC)):
        raise Unauthenticated("the bearer token is unknown, revoked or expired")
    return token.principal


def list_tokens(uow_factory: UowFactory) -> list[ApiToken]:
    with uow_factory().reading() as uow:
        return uow.tokens.list()


def any_token(uow_factory: UowFactory, *, now: datetime | None = None) -> bool:
    """Whether a valid token exists (a server reachable from other machines needs one)."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    return any(token.valid_at(at) for token in list_tokens(uow_factory))
