"""Content: storing and publishing course hierarchies."""

from courseinfra.services.content.handlers import (
    ContentNotFound,
    IdentifierMismatch,
    StoredVersion,
    publish,
    put_hierarchy,
)

__all__ = [
    "ContentNotFound",
    "IdentifierMismatch",
    "StoredVersion",
    "publish",
    "put_hierarchy",
]
