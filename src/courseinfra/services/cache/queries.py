"""What entry points read of the relation cache: the keys a root owns with their values, and the same
read back as a tree."""

from __future__ import annotations

from courseinfra.domain.cache_layout import CacheLayout, CacheValue
from courseinfra.domain.cache_tree import CacheTree, cache_tree
from courseinfra.services.cache.ports import RelationCache


def owned_entries(root: str, cache: RelationCache) -> dict[str, CacheValue | None]:
    """Every key the relation cache holds for ``root``, in key order, with its value (one read of the
    keys, one of the values); empty when it holds none."""
    keys = sorted(cache.owned_keys(root))
    values = cache.get_many(keys)
    return {key: values[key] for key in keys}


def course_cache_tree(root: str, cache: RelationCache, layout: CacheLayout) -> CacheTree:
    """The relation cache of ``root`` as a tree (see :mod:`courseinfra.domain.cache_tree`)."""
    return cache_tree(root, owned_entries(root, cache), layout)
