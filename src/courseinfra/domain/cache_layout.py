"""How relations are named and typed in the relation cache.

Two layouts (see docs/decisions/0003-relation-cache-layout.md):

- ``native``, as the seed names them: ``<collectionId>:leafnodes`` and ``<collectionId>:optionalnodes``
  (sets), ``<rootId>:<resourceId>:ancestors`` (an ordered list, nearest ancestor first, root last) and
  ``<unitId>:metadata`` (the unit's JSON);
- ``sunbird``, as Sunbird Lern deploys them, so that its readers switch over unchanged:
  ``<rootId>:<collectionId>:leafnodes``, ``<rootId>:<collectionId>:optionalnodes``,
  ``<rootId>:<resourceId>:ancestors`` (all sets) and ``<unitId>`` (the unit's JSON).

Keys are written only where the set is non-empty, as the reference job does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import orjson

from courseinfra.domain.hierarchy import CourseRelations


class CacheLayout(StrEnum):
    NATIVE = "native"
    SUNBIRD = "sunbird"


@dataclass(frozen=True, slots=True)
class CacheSet:
    """An unordered set of strings (a Redis SET)."""

    members: frozenset[str]


@dataclass(frozen=True, slots=True)
class CacheList:
    """An ordered list of strings (a Redis LIST)."""

    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CacheText:
    """A string (a Redis STRING); the relation cache keeps JSON documents in it."""

    text: str


CacheValue = CacheSet | CacheList | CacheText


def leaf_nodes_key(collection_id: str, root_id: str, layout: CacheLayout = CacheLayout.NATIVE) -> str:
    if layout is CacheLayout.SUNBIRD:
        return f"{root_id}:{collection_id}:leafnodes"
    return f"{collection_id}:leafnodes"


def optional_nodes_key(collection_id: str, root_id: str, layout: CacheLayout = CacheLayout.NATIVE) -> str:
    if layout is CacheLayout.SUNBIRD:
        return f"{root_id}:{collection_id}:optionalnodes"
    return f"{collection_id}:optionalnodes"


def ancestors_key(resource_id: str, root_id: str) -> str:
    return f"{root_id}:{resource_id}:ancestors"


def unit_key(unit_id: str, layout: CacheLayout = CacheLayout.NATIVE) -> str:
    if layout is CacheLayout.SUNBIRD:
        return unit_id
    return f"{unit_id}:metadata"


def cache_entries(relations: CourseRelations, layout: CacheLayout) -> dict[str, CacheValue]:
    """Every cache entry of ``relations`` in ``layout``: the complete, exact content for its root."""
    root = relations.root_id
    entries: dict[str, CacheValue] = {}
    for collection_id, leaves in relations.leaf_nodes.items():
        entries[leaf_nodes_key(collection_id, root, layout)] = CacheSet(leaves)
    for collection_id, optional in relations.optional_nodes.items():
        entries[optional_nodes_key(collection_id, root, layout)] = CacheSet(optional)
    for resource_id, path in relations.ancestors.items():
        key = ancestors_key(resource_id, root)
        entries[key] = CacheSet(frozenset(path)) if layout is CacheLayout.SUNBIRD else CacheList(path)
    for unit_id, metadata in relations.units.items():
        entries[unit_key(unit_id, layout)] = CacheText(_dumps(metadata))
    return entries


def _dumps(document: Mapping[str, object]) -> str:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()


def members_of(value: CacheValue | None) -> frozenset[str]:
    """A cached set (or list) as a frozenset; empty where the key is absent."""
    match value:
        case CacheSet(members):
            return members
        case CacheList(items):
            return frozenset(items)
    return frozenset()


def path_of(value: CacheValue | None) -> tuple[str, ...]:
    """Cached ancestors as a tuple: the list in its order, or a set (sunbird layout) sorted; empty where
    the key is absent."""
    match value:
        case CacheList(items):
            return items
        case CacheSet(members):
            return tuple(sorted(members))
    return ()


def to_json_value(value: CacheValue | None) -> object:
    """The value as JSON: a sorted array for a set, the ordered array for a list, a document for text
    that holds one, otherwise the text itself; ``None`` where the key is absent."""
    match value:
        case None:
            return None
        case CacheSet(members):
            return sorted(members)
        case CacheList(items):
            return list(items)
        case CacheText(text):
            try:
                return json.loads(text)
            except ValueError:
                return text


def entries_by_kind(entries: Mapping[str, CacheValue]) -> dict[str, int]:
    """How many entries of each kind (``leafnodes``, ``optionalnodes``, ``ancestors``, ``units``)."""
    counts = {"leafnodes": 0, "optionalnodes": 0, "ancestors": 0, "units": 0}
    for key in entries:
        suffix = key.rsplit(":", 1)[-1] if ":" in key else ""
        counts[suffix if suffix in counts else "units"] += 1
    return counts
