"""The port of API access: the stored tokens."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from courseinfra.domain.access import ApiToken


class TokenStore(abc.ABC):
    """API tokens by id and by the hash of their secret."""

    @abc.abstractmethod
    def add(self, token: ApiToken) -> None:
        """Store a new token; :class:`~courseinfra.services.unit_of_work.AlreadyExists` if its id or
        secret hash is taken."""

    @abc.abstractmethod
    def by_secret_hash(self, secret_hash: str) -> ApiToken | None: ...

    @abc.abstractmethod
    def get(self, token_id: str) -> ApiToken | None: ...

    @abc.abstractmethod
    def list(self) -> list[ApiToken]:
        """Every token, revoked and expired ones too, by creation time."""

    @abc.abstractmethod
    def revoke(self, token_id: str, at: datetime) -> bool:
        """Mark a token revoked from ``at`` (a revoked one keeps its first revocation time); whether
        the token exists."""


class JwtVerifier(abc.ABC):
    """The platform's OAuth2 provider's JWTs: signature, issuer, audience and expiry."""

    @abc.abstractmethod
    def claims(self, token: str) -> Mapping[str, Any]:
        """The claims of a valid JWT; :class:`~courseinfra.domain.access.Unauthenticated` otherwise."""
