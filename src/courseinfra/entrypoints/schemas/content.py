"""What the content routes take and answer: stored and published hierarchies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class StoredVersionOut(BaseModel):
    identifier: str
    version: int


class HierarchyOut(BaseModel):
    identifier: str
    version: int
    published_at: datetime | None
    hierarchy: dict[str, Any]


class PublishOut(BaseModel):
    identifier: str
    version: int
    event: dict[str, Any]
    cache_keys: int
