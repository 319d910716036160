"""A relation cache in this process's memory: for tests and for one-process tools."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from courseinfra.domain.cache_layout import CacheValue
from courseinfra.services.cache.ports import RelationCache, ReplaceResult


class InMemoryRelationCache(RelationCache):
    def __init__(self) -> None:
        self._entries: dict[str, CacheValue] = {}
        self._owned: dict[str, frozenset[str]] = {}
        self._claimants: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def replace_owned(self, owner: str, entries: Mapping[str, CacheValue]) -> ReplaceResult:
        with self._lock:
            old = self._owned.get(owner, frozenset())
            new = frozenset(entries)
            deleted = 0
            for key in old - new:
                claimants = self._claimants[key]
                claimants.discard(owner)
                if not claimants:
                    del self._claimants[key]
                    del self._entries[key]
                    deleted += 1
            for key, value in entries.items():
                self._entries[key] = value
                self._claimants.setdefault(key, set()).add(owner)
            self._owned[owner] = new
            return ReplaceResult(written=len(entries), deleted=deleted)

    def get(self, key: str) -> CacheValue | None:
        return self._entries.get(key)

    def owned_keys(self, owner: str) -> frozenset[str]:
        return self._owned.get(owner, frozenset())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._owned.clear()
            self._claimants.clear()
