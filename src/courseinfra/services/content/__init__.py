"""Content: storing and publishing course hierarchies."""

from courseinfra.services.content.handlers import (
    ContentNotFound,
    IdentifierMismatch,
    StoredVersion,
    publish,
    put_hierarchy,
)
from courseinfra.services.content.queries import (
    get_hierarchy,
)

__all__ = [
    "ContentNotFound",
    "IdentifierMismatch",
    "StoredVersion",
    "get_hierarchy",
    "publish",
    "put_hierarchy",
]
