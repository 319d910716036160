"""Shapes every feature shares: the error body, time and date strings, a body that cannot be read."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from courseinfra.domain.errors import DomainError


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


#: The largest id a store keeps (a signed 64-bit integer): a larger one in a request is a 422, not a
#: database error.
MAX_ID = 2**63 - 1


Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


Day = Annotated[str, Field(json_schema_extra={"format": "date"})]


DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _date_text(value: Any) -> Any:
    # Pydantic takes a number, or a string of digits, as seconds since 1970: as_of=0 is a mistake.
    if not isinstance(value, date) and not (isinstance(value, str) and DATE_TEXT.fullmatch(value)):
        raise ValueError("a date is YYYY-MM-DD text")
    return value


#: A date in a request: ``YYYY-MM-DD`` text only, as its schema (``format: date``) says.
IsoDate = Annotated[date, BeforeValidator(_date_text)]


class InvalidBody(DomainError):
    code = "invalid-body"


def iso(value: date | datetime | None) -> str | None:
    """A date or a time as ISO 8601 (None stays None)."""
    return None if value is None else value.isoformat()
