"""Errors the domain raises. Each carries a stable ``code`` an operator or a client can match on, and a
``kind`` that says what went wrong in terms any entry point can translate (the API into a status, the
CLI into a message): the error class declares both, so there is no table of codes far from the errors."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """What kind of failure an error is, whatever its code."""

    #: The request breaks a rule (a bad value, a bad state for it).
    INVALID = "invalid"
    #: The request cannot be read at all (a malformed header, a position of the wrong shape).
    MALFORMED = "malformed"
    #: What the request names does not exist.
    NOT_FOUND = "not-found"
    #: The request collides with what exists (a taken id, a restriction).
    CONFLICT = "conflict"
    #: The request was made against a version that is no longer the current one.
    STALE = "stale"
    #: Another system the request needs failed or refused without saying why.
    UPSTREAM = "upstream"
    #: The request carries no valid credentials.
    UNAUTHENTICATED = "unauthenticated"
    #: The credentials are valid but do not grant what the request asks.
    FORBIDDEN = "forbidden"
    #: A change that must name the version it was made against does not.
    PRECONDITION_REQUIRED = "precondition-required"


class DomainError(Exception):
    """A rule of the domain was broken; ``code`` is stable, the message is for people.

    ``code`` and ``kind`` are class attributes; an instance may override either (an adapter translating
    another system's answer, say)."""

    code: str = "domain-error"
    kind: ErrorKind = ErrorKind.INVALID

    def __init__(self, message: str, *, code: str | None = None, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if kind is not None:
            self.kind = kind


class InvalidHierarchy(DomainError):
    """A content hierarchy that cannot be read as a tree of content nodes."""

    code = "invalid-hierarchy"


class InvalidEvent(DomainError):
    """An event that cannot be read as the request it claims to be."""

    code = "invalid-event"
