"""A root's relation cache read back as a tree: its collections nested, each with the leaves directly
below it, every leaf with its cached ancestors, as the relation cache job stored them.

The cache keeps relations, not the tree: ``leafnodes`` (every leaf below a collection), ``ancestors``
(every collection above a leaf) and a unit's metadata (see :mod:`courseinfra.domain.cache_layout`). The
nesting is derived from them alone, so that what is shown is what readers of the cache read, whatever
the stored hierarchy has become since:

- a collection's parent is, among the collections above one of its leaves whose leaf set holds all of
  its leaves, the one with the fewest leaves; two with the same leaves (a unit holding only a sub-unit)
  are told apart by the ancestors' order (nearest first) in the ``native`` layout;
- siblings are ordered by their metadata's ``index``, name and id (the cache keeps no order of units);
- a leaf is shown under every collection that holds it and has no child collection holding it (a leaf
  placed in two units appears in both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from courseinfra.domain.cache_layout import CacheLayout, CacheText, CacheValue, members_of, path_of


@dataclass(frozen=True, slots=True)
class CachedLeaf:
    leaf_id: str
    ancestors: tuple[str, ...]
    optional: bool


@dataclass(slots=True)
class CachedCollection:
    """A collection of the cache: its leaves (all, below it at any depth), those marked optional, its
    unit metadata if the cache holds some, the child collections and the leaves directly below it."""

    collection_id: str
    leaf_count: int
    optional_count: int
    metadata: Mapping[str, Any] | None = None
    children: list[CachedCollection] = field(default_factory=list)
    leaves: list[CachedLeaf] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        name = (self.metadata or {}).get("name")
        return str(name) if name is not None else None

    @property
    def order(self) -> tuple[int, str, str]:
        """Siblings' order: the unit's ``index`` where its metadata has one, then its name, then its id."""
        index = (self.metadata or {}).get("index")
        return (index if isinstance(index, int) else 1 << 62, self.name or "", self.collection_id)


@dataclass(frozen=True, slots=True)
class CacheTree:
    """What the cache holds for a root: the root collection (None when the cache holds no leaf set for
    it), units whose metadata is cached without a leaf set, keys that match no known layout, and the
    count of keys read."""

    root_id: str
    root: CachedCollection | None
    key_count: int
    units_without_leaves: tuple[str, ...] = ()
    other_keys: tuple[str, ...] = ()


def _strip(key: str, prefix: str, suffix: str) -> str | None:
    if key.startswith(prefix) and key.endswith(suffix) and len(key) > len(prefix) + len(suffix):
        return key[len(prefix) : len(key) - len(suffix)]
    return None


def _metadata(value: CacheValue | None) -> Mapping[str, Any]:
    if isinstance(value, CacheText):
        try:
            document = orjson.loads(value.text)
        except orjson.JSONDecodeError:
            return {"text": value.text}
        return document if isinstance(document, dict) else {"value": document}
    return {}


def cache_tree(root_id: str, entries: Mapping[str, CacheValue | None], layout: CacheLayout) -> CacheTree:
    """The tree of ``entries``, the keys the cache holds for ``root_id`` with their values."""
    leaf_sets: dict[str, frozenset[str]] = {}
    optional_sets: dict[str, frozenset[str]] = {}
    ancestors: dict[str, tuple[str, ...]] = {}
    metadata: dict[str, Mapping[str, Any]] = {}
    other: list[str] = []
    collection_prefix = f"{root_id}:" if layout is CacheLayout.SUNBIRD else ""
    for key in sorted(entries):
        value = entries[key]
        if (leaf := _strip(key, f"{root_id}:", ":ancestors")) is not None:
            ancestors[leaf] = path_of(value)
        elif (collection := _strip(key, collection_prefix, ":leafnodes")) is not None:
            leaf_sets[collection] = members_of(value)
        elif (collection := _strip(key, collection_prefix, ":optionalnodes")) is not None:
            optional_sets[collection] = members_of(value)
        elif isinstance(value, CacheText):
            unit = key if layout is CacheLayout.SUNBIRD else _strip(key, "", ":metadata")
            if unit is None:
                other.append(key)
            else:
                metadata[unit] = _metadata(value)
        else:
            other.append(key)
    if root_id not in leaf_sets:
        return CacheTree(root_id, None, len(entries), tuple(sorted(metadata)), tuple(other))
    nodes = {
        cid: CachedCollection(cid, len(leaves), len(optional_sets.get(cid, ())), metadata.get(cid))
        for cid, leaves in leaf_sets.items()
    }
    # How near a collection sits to its leaves (0: a leaf's parent): orders two with the same leaves.
    nearness: dict[str, int] = {}
    for path in ancestors.values():
        for index, cid in enumerate(path):
            nearness[cid] = min(nearness.get(cid, index), index)

    def rank(cid: str) -> tuple[float, int, str]:
        if cid == root_id:
            return (float("inf"), 0, cid)
        return (len(leaf_sets[cid]), nearness.get(cid, 0), cid)

    parent_of: dict[str, str] = {}
    for cid, leaves in leaf_sets.items():
        if cid == root_id:
            continue
        some_leaf = min(leaves) if leaves else None
        candidates = set(ancestors.get(some_leaf, ())) if some_leaf is not None else set()
        candidates.add(root_id)
        above = [
            other_id
            for other_id in candidates
            if other_id in leaf_sets and rank(other_id) > rank(cid) and leaf_sets[other_id] >= leaves
        ]
        parent_of[cid] = min(above, key=rank) if above else root_id
    for cid in sorted(parent_of, key=lambda c: nodes[c].order):
        nodes[parent_of[cid]].children.append(nodes[cid])
    for cid, node in nodes.items():
        below = set().union(*(leaf_sets[child.collection_id] for child in node.children))
        optional = optional_sets.get(cid, frozenset())
        node.leaves = [
            CachedLeaf(leaf, ancestors.get(leaf, ()), leaf in optional)
            for leaf in sorted(leaf_sets[cid] - below)
        ]
    return CacheTree(
        root_id,
        nodes[root_id],
        len(entries),
        tuple(sorted(unit for unit in metadata if unit not in leaf_sets)),
        tuple(other),
    )
