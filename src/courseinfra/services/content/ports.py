"""The ports of content: the stored hierarchies."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class StoredHierarchy:
    identifier: str
    mime_type: str
    hierarchy: Mapping[str, Any]
    version: int
    updated_at: datetime
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class ContentSummary:
    """What readers need of a stored root without its hierarchy."""

    identifier: str
    version: int
    published_at: datetime | None
    channel: str | None
    framework: str | None


class HierarchyStore(abc.ABC):
    """The content hierarchies, one per root identifier; every put bumps its version."""

    @abc.abstractmethod
    def put(self, identifier: str, mime_type: str, hierarchy: Mapping[str, Any]) -> int:
        """Store ``hierarchy`` as the latest of ``identifier``; return its new version (1, 2, ...)."""

    @abc.abstractmethod
    def get(self, identifier: str) -> StoredHierarchy | None: ...

    @abc.abstractmethod
    def mark_published(self, identifier: str, at: datetime) -> None: ...

    @abc.abstractmethod
    def summaries(self, identifiers: Sequence[str]) -> dict[str, ContentSummary]:
        """The stored roots among ``identifiers``, in one read, without their hierarchies."""

    @abc.abstractmethod
    def published_ids(self, *, after: str = "", limit: int = 1000) -> list[str]:
        """Identifiers of published hierarchies above ``after``, in ascending order (for paging)."""
