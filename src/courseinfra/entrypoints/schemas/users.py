"""Users of the directory, logins and what an import answers."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from courseinfra.entrypoints.schemas.common import Timestamp


class UserOut(BaseModel):
    """A user of the directory; ``updated_at`` is the last change by an import or a profile update."""

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


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = Field(None, description="When the user logged in (default: now).")


class LoginOut(UserOut):
    recorded: bool = Field(description="False if a later login was known already (nothing changed).")


class RowErrorOut(BaseModel):
    line: int = Field(description="The file line where the row starts; in a JSON array, the item number.")
    code: str
    reason: str


class ImportOut(BaseModel):
    inserted: int
    updated: int
    unchanged: int
    errors: list[RowErrorOut] = Field(description="Empty: with a bad row, the answer is 422.")
