"""Who may do what through the API: roles, the permissions they grant, and API tokens.

A client presents a bearer token: an opaque service token kept by courseinfra, or a JWT signed by the
platform's OAuth2 provider. It names one role, may hold the ``pii`` grant (personal data: email, name,
profile) and, for ``course_staff``, the courses or organisations it reaches. Every route asks for one
permission. The command line acts locally with full rights, as the database owner does.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    COURSE_STAFF = "course_staff"
    INGEST = "ingest"
    READER = "reader"


#: The permissions of each role. An operator runs the platform (jobs, failures, reports, groups and
#: learning records) but hands out no token; course staff read and manage the batches, enrolments,
#: groups and reports of the courses their scopes reach, and nothing else; an ingest client only posts
#: events; a reader only reads.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(Permission) - {Permission.ADMINISTER},
    Role.COURSE_STAFF: frozenset({Permission.READ, Permission.MANAGE_LEARNING, Permission.MANAGE_GROUPS}),
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


class ScopeKind(enum.StrEnum):
    COURSE = "course"
    ORGANISATION = "organisation"


@dataclass(frozen=True, slots=True)
class AccessScope:
    """What a ``course_staff`` token reaches: one course, or every course of one organisation (the
    course's ``channel``, as Sunbird names the organisation that owns it)."""

    kind: ScopeKind
    key: str

    @classmethod
    def parse(cls, text: str) -> AccessScope:
        """``course:<course id>`` or ``organisation:<name>``; :class:`InvalidToken` otherwise."""
        kind, _, key = text.partition(":")
        if kind not in {k.value for k in ScopeKind} or not SCOPE_KEY.match(key):
            raise InvalidToken(f"scope {text!r}: expected course:<course id> or organisation:<name>")
        return cls(ScopeKind(kind), key)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.key}"

    def covers(self, course_id: str, organisation: str | None) -> bool:
        if self.kind is ScopeKind.COURSE:
            return course_id == self.key
        return organisation is not None and organisation == self.key


SCOPE_KEY = re.compile(r"^[^\s:][^\s]{0,254}$")


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
    scope: AccessScope | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    @property
    def principal(self) -> Principal:
        return Principal(self.token_id, self.role, self.pii, () if self.scope is None else (self.scope,))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a token's id (or a JWT's user), its role, whether it may see personal
    data, and the scopes it is limited to (none: the whole instance)."""

    subject: str
    role: Role
    pii: bool
    scopes: tuple[AccessScope, ...] = ()

    @property
    def scoped(self) -> bool:
        """Whether the principal reaches only some courses."""
        return bool(self.scopes)

    def allows(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        """:class:`Forbidden` unless the role grants ``permission``."""
        if not self.allows(permission):
            raise Forbidden(f"the role {self.role.value} does not grant {permission.value}")

    def reaches(self, course_id: str, organisation: str | None) -> bool:
        """Whether the course (owned by ``organisation``) is within the principal's scopes."""
        return not self.scopes or any(scope.covers(course_id, organisation) for scope in self.scopes)

    def require_course(self, course_id: str, organisation: str | None) -> None:
        """:class:`Forbidden` unless the course is within the principal's scopes."""
        if not self.reaches(course_id, organisation):
            raise Forbidden(f"the token's scopes ({self.scope_text}) do not reach the course {course_id}")

    def reaches_group_scope(self, group_scope: str, organisation_of: Callable[[str], str | None]) -> bool:
        """Whether a user group's scope (``instance``, ``organisation:O``, ``course:C``) is within the
        principal's scopes: an instance-wide group only for an unscoped principal, an organisation's
        group for that organisation's scope, a course's group as the course. ``organisation_of`` gives
        a course's organisation (None if unknown)."""
        if not self.scopes:
            return True
        kind, _, key = group_scope.partition(":")
        if kind == "course":
            return self.reaches(key, organisation_of(key))
        if kind == "organisation":
            return any(s.kind is ScopeKind.ORGANISATION and s.key == key for s in self.scopes)
        return False

    @property
    def scope_text(self) -> str:
        return ", ".join(str(scope) for scope in self.scopes) or "instance"


#: The local command line: the database owner, with every right.
LOCAL_OWNER = Principal("local", Role.ADMIN, pii=True)


def check_token_request(
    name: str, role: str, expires_in_days: int | None, scope: str | None = None
) -> tuple[Role, AccessScope | None]:
    """The role and scope a token request names; :class:`InvalidToken` for a bad name, role, scope or
    lifetime. A ``course_staff`` token needs a scope, and only such a token takes one."""
    if not TOKEN_NAME.match(name):
        raise InvalidToken(f"token name {name!r}: 1-100 letters, digits, spaces or ._@-, starting with one")
    try:
        parsed = Role(role)
    except ValueError:
        raise InvalidToken(f"role {role!r}: expected one of {', '.join(r.value for r in Role)}") from None
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise InvalidToken(f"expiry {expires_in_days} days: expected 1 to 3650")
    parsed_scope = None if scope is None else AccessScope.parse(scope)
    if parsed is Role.COURSE_STAFF and parsed_scope is None:
        raise InvalidToken("a course_staff token needs a scope: course:<course id> or organisation:<name>")
    if parsed is not Role.COURSE_STAFF and parsed_scope is not None:
        raise InvalidToken(
            f"a scope limits course_staff tokens only; the role {parsed.value} is instance-wide"
        )
    return parsed, parsed_scope


#: Where a JWT names courseinfra's roles: scopes ``courseinfra:<role>`` (and ``courseinfra:pii``), as an
#: Open edX OAuth2 application is granted scopes; ``administrator: true`` (Open edX's staff claim) is
#: an admin.
JWT_SCOPE_PREFIX = "courseinfra:"
#: The most privileged role a JWT names wins.
ROLE_RANK = (Role.ADMIN, Role.OPERATOR, Role.COURSE_STAFF, Role.INGEST, Role.READER)


def _claim_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()  # RFC 9068's space-separated "scope"
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return [item for item in value if isinstance(item, str)]
    return []


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Who a verified JWT acts for. Open edX's claims: ``administrator`` (a global staff user: admin,
    with personal data), ``scopes`` (or RFC 9068's ``scope``) naming ``courseinfra:<role>`` and
    ``courseinfra:pii``, ``filters`` restricting a ``course_staff`` token to ``content_org:<org>`` or
    ``course:<course id>``; the subject is ``preferred_username``, else ``sub``. :class:`Forbidden`
    for a token that names no role, or a course_staff token without a course or organisation."""
    user = claims.get("preferred_username") or claims.get("sub")
    subject = f"jwt:{user}" if isinstance(user, str) and user else "jwt:unknown"
    if claims.get("administrator") is True:
        return Principal(subject, Role.ADMIN, pii=True)
    granted = _claim_strings(claims.get("scopes")) + _claim_strings(claims.get("scope"))
    names = {scope.removeprefix(JWT_SCOPE_PREFIX) for scope in granted if scope.startswith(JWT_SCOPE_PREFIX)}
    role = next((role for role in ROLE_RANK if role.value in names), None)
    if role is None:
        raise Forbidden(
            "the token grants no courseinfra role (scopes courseinfra:admin, :operator, :course_staff, "
            ":ingest or :reader)"
        )
    scopes: list[AccessScope] = []
    if role is Role.COURSE_STAFF:
        for item in _claim_strings(claims.get("filters")):
            kind, _, key = item.partition(":")
            if kind == "content_org" and key:
                scopes.append(AccessScope(ScopeKind.ORGANISATION, key))
            elif kind == "course" and key:
                scopes.append(AccessScope(ScopeKind.COURSE, key))
        if not scopes:
            raise Forbidden("a course_staff token needs filters content_org:<org> or course:<course id>")
    return Principal(subject, role, "pii" in names, tuple(scopes))
