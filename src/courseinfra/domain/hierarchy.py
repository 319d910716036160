"""Content hierarchies as Sunbird publishes them, and the relations derived from them.

A hierarchy is a tree of JSON objects linked by ``children``. A node whose ``mimeType`` is the collection
mimeType is a *collection* (the root, its units); every other node is a *leaf* (a resource), whatever its
mimeType. A leaf may occur under several units; a collection occurs once.

:func:`parse_hierarchy` validates the tree and flattens it; :func:`compute_relations` derives, for the
root, every collection's leaf nodes and optional nodes, every leaf's ancestors and the unit metadata that
readers fetch by unit id. Both are linear in the size of the output and never recurse, so a hierarchy as
deep as it is wide is handled like any other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from courseinfra.domain.errors import InvalidHierarchy
from courseinfra.domain.quoting import json_text

COLLECTION_MIME_TYPE = "application/vnd.ekstep.content-collection"
PARENT_VISIBILITY = "Parent"

NO_PARENT = -1


@dataclass(frozen=True, slots=True)
class FlatHierarchy:
    """A validated hierarchy in depth-first pre-order; position 0 is the root.

    Parallel tuples, one entry per node occurrence: ``parents[i]`` is the position of the node's parent
    (:data:`NO_PARENT` for the root), ``optional[i]`` whether the relation to that parent is marked
    ``relationalMetadata.optional``.
    """

    identifiers: tuple[str, ...]
    parents: tuple[int, ...]
    is_collection: tuple[bool, ...]
    optional: tuple[bool, ...]
    nodes: tuple[Mapping[str, Any], ...]

    @property
    def root_id(self) -> str:
        return self.identifiers[0]

    def __len__(self) -> int:
        return len(self.identifiers)


@dataclass(frozen=True, slots=True)
class CourseRelations:
    """What the relation cache holds for one published root.

    - ``leaf_nodes``: every collection with at least one leaf below it, to the set of those leaves;
    - ``optional_nodes``: every collection with optional leaves below it, to that set;
    - ``ancestors``: every leaf, to its ancestor collections, nearest first and ending with the root;
    - ``units``: every ``visibility: Parent`` collection that has children, to its own metadata
      (without ``children``).
    """

    root_id: str
    leaf_nodes: Mapping[str, frozenset[str]]
    optional_nodes: Mapping[str, frozenset[str]]
    ancestors: Mapping[str, tuple[str, ...]]
    units: Mapping[str, Mapping[str, Any]]


def is_collection_mime_type(value: object) -> bool:
    """Whether a ``mimeType`` names a collection, compared as Sunbird's relation-cache-updater compares
    it: ignoring case (``StringUtils.equalsIgnoreCase``)."""
    return isinstance(value, str) and value.lower() == COLLECTION_MIME_TYPE


def is_collection(node: Mapping[str, Any]) -> bool:
    return is_collection_mime_type(node.get("mimeType"))


def is_optional_flag(value: object) -> bool:
    """Whether ``relationalMetadata.optional`` marks a relation optional, as Sunbird reads it: its text
    is ``true`` ignoring case (``optional.toString`` against ``"true"``), so the JSON boolean ``true``
    and the strings ``"true"``, ``"True"``, ``"TRUE"`` do, anything else does not."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _is_optional(node: Mapping[str, Any]) -> bool:
    metadata = node.get("relationalMetadata")
    return isinstance(metadata, Mapping) and is_optional_flag(metadata.get("optional"))


def _children(node: Mapping[str, Any], where: str) -> Sequence[Any]:
    children = node.get("children")
    if children is None:
        return ()
    if not isinstance(children, list):
        raise InvalidHierarchy(f"{where}: 'children' must be a list, not {type(children).__name__}")
    return children


def _identifier(node: Any, where: str) -> str:
    if not isinstance(node, Mapping):
        raise InvalidHierarchy(f"{where}: a node must be a JSON object, not {type(node).__name__}")
    identifier = node.get("identifier")
    if not isinstance(identifier, str) or not identifier.strip():
        raise InvalidHierarchy(f"{where}: a node needs a non-empty string 'identifier'")
    return identifier


#: How many levels of collections a hierarchy may have below its root. Courses have a handful; the
#: limit keeps a stored document within what the JSON encoders nest (about 250 levels of objects and
#: arrays, two a level).
MAX_DEPTH = 100

#: How deeply any JSON a hierarchy holds may nest (objects and arrays), metadata included.
MAX_NESTING = 2 * MAX_DEPTH + 20


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests objects and arrays (a scalar: 0), counted without recursion and no
    further than ``limit + 1``: a deeper value answers ``limit + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > limit:
                return limit + 1
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def holds_nul(value: Any) -> bool:
    """Whether a parsed JSON value holds U+0000 in a key or a string (no store keeps one), found
    without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


#: The longest root identifier, channel and framework of a hierarchy (the store's columns are 255
#: characters wide).
MAX_TEXT = 255

#: The integers a document may hold: what 64 bits hold, signed or unsigned.
MIN_INT, MAX_INT = -(2**63), 2**64 - 1


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "holds a NUL character (U+0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "holds a lone surrogate (not Unicode text)"
    return None


def _value_problem(value: Any) -> str | None:
    """What makes a scalar no JSON value that every store keeps, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (
            None
            if MIN_INT <= value <= MAX_INT
            else f"an integer of {value.bit_length()} bits is beyond 64 bits"
        )
    if isinstance(value, float):
        return None if math.isfinite(value) else f"the number {value} is not a JSON number"
    if isinstance(value, str):
        problem = _text_problem(value)
        return None if problem is None else f"the text {value[:40]!r} {problem}"
    return f"a {type(value).__name__} is not a JSON value"


def check_document(raw: Any) -> None:
    """Raise :class:`InvalidHierarchy` unless ``raw`` is a document the hierarchy store keeps as it is
    given: objects and arrays nested at most :data:`MAX_NESTING` deep, objects with text keys, text
    without NUL characters or lone surrogates, integers within 64 bits, finite numbers, and a root
    ``identifier``, ``channel`` and ``framework`` of at most :data:`MAX_TEXT` characters. Checked
    without recursion."""
    stack: list[tuple[Any, int]] = [(raw, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_NESTING:
                raise InvalidHierarchy(f"the document nests objects and arrays more than {MAX_NESTING} deep")
            if isinstance(item, list):
                stack.extend((child, depth + 1) for child in item)
                continue
            for key, child in item.items():
                problem = _text_problem(key) if isinstance(key, str) else "is not text"
                if problem is not None:
                    raise InvalidHierarchy(f"the document is not JSON: the key {key!r:.40} {problem}")
                stack.append((child, depth + 1))
        elif (problem := _value_problem(item)) is not None:
            raise InvalidHierarchy(f"the document is not JSON: {problem}")
    if isinstance(raw, Mapping):
        for name in ("identifier", "channel", "framework"):
            value = raw.get(name)
            if isinstance(value, str) and len(value) > MAX_TEXT:
                raise InvalidHierarchy(
                    f"the root's {name} {value[:40]!r}... is {len(value)} characters long, over {MAX_TEXT}"
                )


def parse_hierarchy(raw: Any, *, max_depth: int | None = MAX_DEPTH) -> FlatHierarchy:
    """Validate ``raw`` as a hierarchy and flatten it in depth-first pre-order.

    Raises :class:`InvalidHierarchy`, naming the node, when a node is not an object, has no identifier,
    has ``children`` that are not a list, when the root is not a collection, when a collection occurs
    twice, when one identifier names both a collection and a leaf, or when a node lies more than
    ``max_depth`` levels below the root (:data:`MAX_DEPTH`; None: no limit, for what is stored already).
    """
    root_id = _identifier(raw, "root")
    if not is_collection(raw):
        raise InvalidHierarchy(
            f"root {root_id}: mimeType {json_text(raw.get('mimeType'))} is not a collection ({COLLECTION_MIME_TYPE})"
        )
    identifiers: list[str] = []
    parents: list[int] = []
    collection_flags: list[bool] = []
    optional_flags: list[bool] = []
    nodes: list[Mapping[str, Any]] = []
    collections_seen: set[str] = set()
    leaves_seen: set[str] = set()
    # Children are pushed reversed so that they are popped, and numbered, in document order. A node's
    # place (its index under its parent) is kept as a number: the error text is built only when raised.
    stack: list[tuple[Any, int, int, int]] = [(raw, NO_PARENT, 0, 0)]
    while stack:
        node, parent, index, depth = stack.pop()
        if type(node) is dict and type(node.get("identifier")) is str and node["identifier"].strip():
            identifier = node["identifier"]
        else:
            where = "root" if parent == NO_PARENT else f"child {index} of {identifiers[parent]}"
            identifier = _identifier(node, where)
        collection = is_collection(node)
        if collection:
            if identifier in collections_seen:
                raise InvalidHierarchy(f"collection {identifier} occurs more than once in the hierarchy")
            collections_seen.add(identifier)
        else:
            leaves_seen.add(identifier)
        position = len(identifiers)
        identifiers.append(identifier)
        parents.append(parent)
        collection_flags.append(collection)
        optional_flags.append(_is_optional(node))
        nodes.append(node)
        if collection:
            children = _children(node, f"collection {identifier}")
            if children and depth == max_depth:
                raise InvalidHierarchy(
                    f"collection {identifier} at depth {depth} has children: a hierarchy is at most "
                    f"{max_depth} levels deep"
                )
            for child_index in range(len(children) - 1, -1, -1):
                stack.append((children[child_index], position, child_index, depth + 1))
    both = collections_seen & leaves_seen
    if both:
        raise InvalidHierarchy(f"identifier {sorted(both)[0]} names both a collection and a leaf")
    return FlatHierarchy(
        identifiers=tuple(identifiers),
        parents=tuple(parents),
        is_collection=tuple(collection_flags),
        optional=tuple(optional_flags),
        nodes=tuple(nodes),
    )


def compute_relations(hierarchy: FlatHierarchy) -> CourseRelations:
    """Derive the relation cache of ``hierarchy``'s root.

    Every leaf occurrence walks up its parent chain once: each collection it passes gains the leaf, and
    gains it as optional once the walk has crossed an optional relation (a leaf marked optional, or a
    unit marked optional, is optional for everything above that relation). A leaf's ancestors are the
    distinct collections of all its occurrences in depth-first order, nearest first, with the root moved
    to the end so that every ancestor list ends with the root.
    """
    identifiers, parents, collection_flags = hierarchy.identifiers, hierarchy.parents, hierarchy.is_collection
    optional_flags = hierarchy.optional
    root_id = hierarchy.root_id
    leaf_nodes: dict[str, set[str]] = {}
    optional_nodes: dict[str, set[str]] = {}
    ancestors: dict[str, dict[str, None]] = {}
    for position, leaf_id in enumerate(identifiers):
        if collection_flags[position]:
            continue
        path = ancestors.setdefault(leaf_id, {})
        optional = False
        current = position
        parent = parents[current]
        while parent != NO_PARENT:
            optional = optional or optional_flags[current]
            collection_id = identifiers[parent]
            leaf_nodes.setdefault(collection_id, set()).add(leaf_id)
            if optional:
                optional_nodes.setdefault(collection_id, set()).add(leaf_id)
            if parent != 0:
                path[collection_id] = None
            current = parent
            parent = parents[current]
    units: dict[str, Mapping[str, Any]] = {}
    for position, node in enumerate(hierarchy.nodes):
        if position == 0 or not collection_flags[position]:
            continue
        if node.get("visibility") == PARENT_VISIBILITY and node.get("children"):
            units[identifiers[position]] = {key: value for key, value in node.items() if key != "children"}
    return CourseRelations(
        root_id=root_id,
        leaf_nodes={key: frozenset(members) for key, members in leaf_nodes.items()},
        optional_nodes={key: frozenset(members) for key, members in optional_nodes.items()},
        ancestors={leaf: (*path, root_id) for leaf, path in ancestors.items()},
        units=units,
    )
