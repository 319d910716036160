"""The relation cache, read."""

from __future__ import annotations

from typing import Any

from fastapi import (
    APIRouter,
)

from courseinfra.domain.access import Permission
from courseinfra.domain.cache_layout import to_json_value
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.entrypoints.api.deps import (
    AUTH,
    INVALID,
    NOT_FOUND,
    AppDep,
    guard,
)
from courseinfra.entrypoints.schemas.cache import CacheEntryOut
from courseinfra.services.cache import owned_entries

router = APIRouter(
    tags=["cache"],
    dependencies=[guard(read=Permission.READ, write=Permission.OPERATE)],
    responses=AUTH,
)


class CacheKeyNotFound(DomainError):
    code = "cache-key-not-found"
    kind = ErrorKind.NOT_FOUND


@router.get("/v1/cache/{key:path}", response_model=CacheEntryOut, responses={**INVALID, **NOT_FOUND})
def cache_get(app: AppDep, key: str) -> CacheEntryOut:
    """One cache key: a sorted array for a set, the ordered array for a list, the document for text."""
    value = app.cache.get(key)
    if value is None:
        raise CacheKeyNotFound(f"the relation cache has no key {key}")
    return CacheEntryOut(key=key, value=to_json_value(value))


@router.get("/v1/cache-owners/{root}", response_model=dict[str, Any], responses=INVALID)
def cache_show(app: AppDep, root: str) -> dict[str, Any]:
    """Every key the relation cache holds for a root, with its value (empty if it holds none)."""
    return {key: to_json_value(value) for key, value in owned_entries(root, app.cache).items()}
