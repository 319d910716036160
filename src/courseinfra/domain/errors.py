"""Errors the domain raises. Each carries a stable ``code`` an operator or a client can match on."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain was broken; ``code`` is stable, the message is for people."""

    code: str = "domain-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidHierarchy(DomainError):
    """A content hierarchy that cannot be read as a tree of content nodes."""

    code = "invalid-hierarchy"


class InvalidEvent(DomainError):
    """An event that cannot be read as the request it claims to be."""

    code = "invalid-event"
