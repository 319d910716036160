"""Users of the directory, logins and what an import answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from courseinfra.domain.users import RowError, User
from courseinfra.entrypoints.schemas.common import Timestamp, iso
from courseinfra.services.users import ImportReport

#: What stands for a personal value a caller may not see.
MASKED = "***"


def _masked(value: str | None, reveal: bool) -> str | None:
    return value if reveal or value is None else MASKED


class UserOut(BaseModel):
    """A user of the directory; ``updated_at`` is the last change by an import or a profile update.
    Without the ``pii`` grant, the email, the name and every profile value read ``***``."""

    user_id: str
    username: str | None
    email: str | None
    name: str | None
    organisation: str | None
    last_login_at: Timestamp | None
    is_staff: bool
    profile: dict[str, str]
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, user: User, *, reveal: bool = True, **extra: Any) -> Self:
        """A row of ``users``; the same keys an import reads back. ``reveal``: the personal data as
        stored (else masked)."""
        return cls(
            user_id=user.user_id,
            username=user.username,
            email=_masked(user.email, reveal),
            name=_masked(user.name, reveal),
            organisation=user.organisation,
            last_login_at=iso(user.last_login_at),
            is_staff=user.is_staff,
            profile=dict.fromkeys(user.profile, MASKED) if not reveal else dict(user.profile),
            created_at=iso(user.created_at),
            updated_at=iso(user.updated_at),
            **extra,
        )


#: How far ahead of this server's clock a login may be reported (another machine's clock may run ahead).
CLOCK_SKEW = timedelta(minutes=5)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = Field(
        None,
        description="When the user logged in, an RFC 3339 time with its offset (default: now); not in the future.",
    )

    @field_validator("at", mode="before")
    @classmethod
    def _a_time_text(cls, value: Any) -> Any:
        # A number would be read as seconds since 1970: {"at": 0} is a mistake, not a login in 1970.
        if value is not None and not isinstance(value, str):
            raise ValueError("a time is RFC 3339 text with its offset, such as 2026-11-23T08:00:00Z")
        return value

    @field_validator("at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError("a login cannot be in the future")
        return value


class LoginOut(UserOut):
    recorded: bool = Field(description="False if a later login was known already (nothing changed).")


class RowErrorOut(BaseModel):
    line: int = Field(description="The file line where the row starts; in a JSON array, the item number.")
    code: str
    reason: str

    @classmethod
    def of(cls, error: RowError) -> Self:
        return cls(line=error.line, code=error.code, reason=error.reason)


class ImportOut(BaseModel):
    inserted: int
    updated: int
    unchanged: int
    errors: list[RowErrorOut] = Field(description="Empty: with a bad row, the answer is 422.")

    @classmethod
    def of(cls, report: ImportReport) -> Self:
        """Counts of an import, and its bad rows (when there are any, nothing was imported)."""
        return cls(
            inserted=report.inserted,
            updated=report.updated,
            unchanged=report.unchanged,
            errors=[RowErrorOut.of(error) for error in report.errors],
        )
