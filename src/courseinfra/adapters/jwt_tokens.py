"""Verification of OAuth2 JWTs as Open edX issues them (edx-drf-extensions' ``JWT_AUTH``): HS256 with a
shared key, RS256/ES256 with the keys of a JWK set, given inline or fetched from the provider's JWKS
URL (cached; fetched again for a key id it does not know, so that a key rotation is picked up)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt

from courseinfra.domain.access import Unauthenticated
from courseinfra.services.access.ports import JwtVerifier

#: Asymmetric algorithms a JWK set may sign with; HS256 only with the shared key, never with a public
#: key (the algorithm-confusion attack).
ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")


class PyJwtVerifier(JwtVerifier):
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        secret: str | None = None,
        public_keys: str | None = None,
        jwks_url: str | None = None,
        leeway_seconds: int = 30,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.secret = secret
        self.leeway = leeway_seconds
        self.keyset = jwt.PyJWKSet.from_dict(json.loads(public_keys)) if public_keys else None
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5) if jwks_url else None

    def claims(self, token: str) -> Mapping[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            key = self._key(algorithm, header.get("kid"))
            return jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the JWT is not valid: {error}") from None

    def _key(self, algorithm: Any, key_id: Any) -> Any:
        if algorithm == "HS256":
            if self.secret is None:
                raise jwt.InvalidAlgorithmError("HS256 JWTs are not accepted here (no shared key)")
            return self.secret
        if algorithm not in ASYMMETRIC:
            raise jwt.InvalidAlgorithmError(f"the algorithm {algorithm!r} is not accepted")
        if self.keyset is not None:
            for key in self.keyset.keys:
                if key_id is None or key.key_id == key_id:
                    return key.key
        if self.jwks is not None:
            try:
                return self.jwks.get_signing_key(key_id).key if key_id else self._only_key()
            except jwt.PyJWKClientConnectionError as error:
                raise jwt.InvalidTokenError(f"the JWK set could not be fetched: {error}") from None
        raise jwt.InvalidKeyError(f"no key {key_id!r} signs JWTs here")

    def _only_key(self) -> Any:
        assert self.jwks is not None
        keys = self.jwks.get_signing_keys()
        if len(keys) != 1:
            raise jwt.InvalidKeyError("the JWT names no key id (kid) and the JWK set holds several keys")
        return keys[0].key
