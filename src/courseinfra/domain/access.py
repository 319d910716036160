"""Who may do what through the API: roles, the permissions they grant, and API tokens.

A client presents a bearer token; the token names one role, and may hold the ``pii`` grant (personal
data: email, name, profile). Every route asks for one permission. The command line acts locally with
full rights, as the database owner does.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from courseinfra.domain.errors import DomainError, ErrorKind


class Permission(enum.StrEnum):
    """What a route asks of its caller."""

    READ = "read"  # course data: content, cache, batches, enrolments, groups, reports, counters
    INGEST = "ingest"  # post events
    WRITE_CONTENT = "write-content"  # store and publish hierarchies
    MANAGE_LEARNING = "manage-learning"  # batches, enrolments, recomputations
    MANAGE_GROUPS = "manage-groups"  # user groups and their legacy groups
    MANAGE_USERS = "manage-users"  # the user directory: imports, logins, profiles
    OPERATE = "operate"  # jobs, failed events and replays, report runs, cache rebuilds, sync status
    ADMINISTER = "administer"  # tokens


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    INGEST = "ingest"
    READER = "reader"


#: The permissions of each role. An operator runs the platform (jobs, failures, reports, groups and
#: learning records) but hands out no token; an ingest client only posts events; a reader only reads.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(Permission) - {Permission.ADMINISTER},
    Role.INGEST: frozenset({Permission.INGEST}),
    Role.READER: frozenset({Permission.READ}),
}


class Unauthenticated(DomainError):
    """No credentials, or credentials that name no valid token (unknown, revoked or expired)."""

    code = "unauthenticated"
    kind = ErrorKind.UNAUTHENTICATED


class Forbidden(DomainError):
    code = "forbidden"
    kind = ErrorKind.FORBIDDEN


class InvalidToken(DomainError):
    """A token request the rules refuse (a bad name, a role that does not exist, a past expiry)."""

    code = "invalid-token-request"


class TokenNotFound(DomainError):
    code = "token-not-found"
    kind = ErrorKind.NOT_FOUND


#: What every secret starts with, so that a leaked one is recognised (by secret scanners, in logs).
SECRET_PREFIX = "cit_"
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$")


def new_secret() -> str:
    """A new bearer secret: 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """What is stored of a secret. A secret is 256 random bits, so one SHA-256 round is enough: there
    is no dictionary to try, and a lookup by hash stays one index probe."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as stored: never its secret, only the secret's hash."""

    token_id: str
    name: str
    role: Role
    pii: bool
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    @property
    def principal(self) -> Principal:
        return Principal(self.token_id, self.role, self.pii)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a token's id, its role, and whether it may see personal data."""

    subject: str
    role: Role
    pii: bool

    def allows(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        """:class:`Forbidden` unless the role grants ``permission``."""
        if not self.allows(permission):
            raise Forbidden(f"the role {self.role.value} does not grant {permission.value}")


#: The local command line: the database owner, with every right.
LOCAL_OWNER = Principal("local", Role.ADMIN, pii=True)


def check_token_request(name: str, role: str, expires_in_days: int | None) -> Role:
    """The role a token request names; :class:`InvalidToken` for a bad name, role or lifetime."""
    if not TOKEN_NAME.match(name):
        raise InvalidToken(f"token name {name!r}: 1-100 letters, digits, spaces or ._@-, starting with one")
    try:
        parsed = Role(role)
    except ValueError:
        raise InvalidToken(f"role {role!r}: expected one of {', '.join(r.value for r in Role)}") from None
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise InvalidToken(f"expiry {expires_in_days} days: expected 1 to 3650")
    return parsed
