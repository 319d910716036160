"""API tokens: what a creation takes, and a token as listed (never its secret, but once)."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from courseinfra.domain.access import SCOPE_KEY, TOKEN_NAME, ApiToken, Role, ScopeKind
from courseinfra.entrypoints.schemas.common import Timestamp, iso


class TokenIn(BaseModel):
    # What check_token_request takes: a course_staff token names a scope, another role none.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["scope"],
                    "properties": {"role": {"const": Role.COURSE_STAFF.value}, "scope": {"type": "string"}},
                },
                {
                    "properties": {
                        "role": {"not": {"const": Role.COURSE_STAFF.value}},
                        "scope": {"type": "null"},
                    }
                },
            ]
        },
    )

    name: str = Field(
        description="Who or what holds it: a service, a person.",
        json_schema_extra={"pattern": TOKEN_NAME.pattern},
    )
    role: Role = Field(description="admin, operator, course_staff, ingest or reader.")
    # Strict: as the schema says, 0 or "yes" is not a boolean, "30" not a number of days.
    pii: StrictBool = Field(False, description="May see personal data (email, name, profile, report files).")
    expires_in_days: StrictInt | None = Field(
        None, ge=1, le=3650, description="1 to 3650; absent: it never expires."
    )
    scope: str | None = Field(
        None,
        max_length=300,
        description="course:<course id> or organisation:<name>: what a course_staff token reaches "
        "(required for that role, refused for the others).",
        json_schema_extra={"pattern": f"^({'|'.join(ScopeKind)}):{SCOPE_KEY.pattern.removeprefix('^')}"},
    )


class TokenOut(BaseModel):
    token_id: str
    name: str
    role: str
    pii: bool
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    scope: str | None = Field(None, description="What a course_staff token reaches; absent: the instance.")

    @classmethod
    def of(cls, token: ApiToken, **extra: Any) -> Self:
        return cls(
            token_id=token.token_id,
            name=token.name,
            role=token.role.value,
            pii=token.pii,
            created_at=iso(token.created_at),
            expires_at=iso(token.expires_at),
            revoked_at=iso(token.revoked_at),
            scope=None if token.scope is None else str(token.scope),
            **extra,
        )


class TokenCreatedOut(TokenOut):
    secret: str = Field(description="The bearer secret: shown this once, kept only as a hash.")
