"""An entry of the relation cache."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class CacheEntryOut(BaseModel):
    key: str
    value: Any
