"""The ports of the relation cache."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from courseinfra.domain.cache_layout import CacheValue


@dataclass(frozen=True, slots=True)
class ReplaceResult:
    written: int
    deleted: int


class RelationCache(abc.ABC):
    """A key-value cache of sets, lists and strings whose keys are owned by a root.

    :meth:`replace_owned` makes ``entries`` the complete content of an owner in one atomic step: a reader
    sees all the old entries or all the new ones, and keys of the owner's previous content that are not
    in ``entries`` are deleted, unless another owner still claims them.
    """

    @abc.abstractmethod
    def replace_owned(self, owner: str, entries: Mapping[str, CacheValue]) -> ReplaceResult: ...

    @abc.abstractmethod
    def get(self, key: str) -> CacheValue | None: ...

    def get_many(self, keys: Sequence[str]) -> dict[str, CacheValue | None]:
        return {key: self.get(key) for key in keys}

    @abc.abstractmethod
    def owned_keys(self, owner: str) -> frozenset[str]: ...

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every key this cache wrote (for tests and for a full rebuild)."""

    def close(self) -> None:  # noqa: B027 - a no-op unless the cache holds a connection
        """Release connections."""
