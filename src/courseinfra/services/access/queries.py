"""Who a bearer secret acts for, and the tokens an administrator lists."""

from __future__ import annotations

from datetime import UTC, datetime

from courseinfra.domain.access import (
    SECRET_PREFIX,
    ApiToken,
    Principal,
    Unauthenticated,
    principal_from_claims,
    secret_hash,
)
from courseinfra.services.access.ports import JwtVerifier
from courseinfra.services.unit_of_work import UowFactory


def authenticate(
    secret: str, uow_factory: UowFactory, *, jwt: JwtVerifier | None = None, now: datetime | None = None
) -> Principal:
    """The principal of a bearer secret: a courseinfra token (``cit_...``), or a JWT when ``jwt``
    verifies them. :class:`Unauthenticated` for an unknown, revoked or expired token (the same answer
    for each, so that a caller learns nothing of which) or an invalid JWT; ``Forbidden`` for a valid
    JWT that names no courseinfra role."""
    if not secret.startswith(SECRET_PREFIX) and jwt is not None and secret.count(".") == 2:
        return principal_from_claims(jwt.claims(secret))
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
