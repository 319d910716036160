"""Field readers for the Open edX readings (:mod:`.openedx_events`, :mod:`.openedx_tracking_logs`): each
reads one field of a mapping, named by its path (``cohort.user.id``), or raises :class:`Invalid` carrying
the ``failed`` rejection that names it (``missing-field``, ``invalid-field``). Only the reading functions
of those modules call them, and they catch :class:`Invalid`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from courseinfra.domain.job_requests import Outcome, Rejection


class Invalid(Exception):
    """Raised by a field reader at the first malformed field, and turned into its rejection by the
    reading function that called it: bad input never leaves a reading function as an exception."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.reason)
        self.rejection = rejection


def missing(path: str) -> Invalid:
    return Invalid(Rejection(Outcome.FAILED, "missing-field", f"{path} is missing"))


def invalid(path: str, value: object, expected: str) -> Invalid:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return Invalid(Rejection(Outcome.FAILED, "invalid-field", f"{path}: {shown} is not {expected}"))


def get(data: Mapping[str, Any], name: str, path: str) -> Any:
    if name not in data:
        raise missing(f"{path}.{name}")
    return data[name]


def mapping(data: Mapping[str, Any], name: str, path: str) -> Mapping[str, Any]:
    value = get(data, name, path)
    if not isinstance(value, Mapping):
        raise invalid(f"{path}.{name}", value, "an object")
    return value


def text(data: Mapping[str, Any], name: str, path: str, *, required: bool = False) -> str:
    """Text; ``required`` text must not be blank (keys and names the project matches on)."""
    value = get(data, name, path)
    if not isinstance(value, str):
        raise invalid(f"{path}.{name}", value, "text")
    if required and not value.strip():
        raise invalid(f"{path}.{name}", value, "non-empty text")
    return value


def optional_text(data: Mapping[str, Any], name: str, path: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{path}.{name}", value, "text")
    return value


def integer(data: Mapping[str, Any], name: str, path: str) -> int:
    """A whole number; a tracking log's ids may arrive as decimal text, which is read as the number."""
    value = get(data, name, path)
    if type(value) is int:
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    raise invalid(f"{path}.{name}", value, "a whole number")


def boolean(data: Mapping[str, Any], name: str, path: str) -> bool:
    value = get(data, name, path)
    if not isinstance(value, bool):
        raise invalid(f"{path}.{name}", value, "true or false")
    return value


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def date_time(data: Mapping[str, Any], name: str, path: str) -> datetime:
    value = get(data, name, path)
    if not isinstance(value, datetime):
        raise invalid(f"{path}.{name}", value, "a date-time")
    return as_utc(value)


def optional_date_time(data: Mapping[str, Any], name: str, path: str) -> datetime | None:
    return None if data.get(name) is None else date_time(data, name, path)


def json_object(data: Mapping[str, Any], name: str, path: str) -> Mapping[str, Any]:
    raw = text(data, name, path)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        # RecursionError: JSON nested thousands deep is bad input too, not a crash.
        raise invalid(f"{path}.{name}", raw, "JSON text") from None
    if not isinstance(value, dict):
        raise invalid(f"{path}.{name}", raw, "a JSON object")
    return value
