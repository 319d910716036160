"""Content: storing and publishing course hierarchies."""

from courseinfra.services.content.handlers import (
    ContentNotFound,
    IdentifierMismatch,
    StoredVersion,
    publish,
    put_hierarchy,
)
from courseinfra.services.content.queries import (
    course_summary,
    get_hierarchy,
    published_courses,
)

__all__ = [
    "ContentNotFound",
    "IdentifierMismatch",
    "StoredVersion",
    "course_summary",
    "get_hierarchy",
    "publish",
    "published_courses",
    "put_hierarchy",
]
