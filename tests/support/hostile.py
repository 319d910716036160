"""Hypothesis strategies of hostile input for the parsers' fuzz tests: text with lone surrogates, NUL
and very long runs, integers past 64 bits, NaN and infinities, wrong types, deep nesting, duplicate keys,
and trees shaped like hierarchies (so that the parser goes deep) made of all that."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE

#: Any code point, lone surrogates included.
ANY_CHAR = st.characters(exclude_categories=())

hostile_text = st.one_of(
    st.text(ANY_CHAR, max_size=20),
    st.sampled_from(
        ["", " ", "\x00", "a\x00b", "\ud800", "\udfff", "\u2028", "\ufeff", "é", "\U0001d54f", "\\"]
    ),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\x00", "\U0001d54f"]), st.integers(200, 3000)),
)
hostile_int = st.one_of(
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**400, -(10**400)]),
)
hostile_scalar = st.one_of(
    st.none(),
    st.booleans(),
    hostile_int,
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
HIERARCHY_KEYS = [
    "identifier",
    "mimeType",
    "children",
    "visibility",
    "relationalMetadata",
    "optional",
    "channel",
    "framework",
    "name",
]
hostile_key = st.one_of(st.sampled_from(HIERARCHY_KEYS), hostile_text)


def hostile_values(scalar: st.SearchStrategy[Any] = hostile_scalar) -> st.SearchStrategy[Any]:
    """JSON-shaped values (dicts with string keys, lists, scalars), wrong types wherever they may be."""
    return st.recursive(
        scalar,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(hostile_key, inner, max_size=4)),
        max_leaves=20,
    )


def nested(levels: int, inner: Any = 0) -> Any:
    """``inner`` inside ``levels`` lists and objects (alternating), built without recursion."""
    value = inner
    for level in range(levels):
        value = [value] if level % 2 else {"children": value}
    return value


deep_values = st.builds(nested, st.integers(0, 3000), hostile_scalar)


def nested_text(levels: int, opener: str = "[") -> str:
    """JSON text nesting ``levels`` arrays (``[``) or objects (``{``)."""
    if opener == "[":
        return "[" * levels + "]" * levels
    return '{"a":' * levels + "0" + "}" * levels


def dumps(value: Any, *, ascii_only: bool = True) -> str:
    """``value`` as JSON text the way Python writes it: NaN and Infinity as such, lone surrogates as
    ``\\ud800`` escapes (``ascii_only``) or as themselves."""
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)


#: JSON text, most of it valid, some of it what only a lenient reader accepts.
hostile_json_text = st.one_of(
    hostile_values().map(dumps),
    hostile_values().map(lambda v: dumps(v, ascii_only=False)),
    st.builds(nested_text, st.integers(0, 5000), st.sampled_from(["[", "{"])),
    st.builds(
        lambda key, first, second: f'{{"{key}": {first}, "{key}": {second}}}',
        st.sampled_from(["identifier", "edata", "children", "mimeType", "action"]),
        st.sampled_from(['"a"', "1", "null", "[]", '{"action": "post-publish-process"}']),
        st.sampled_from(['"b"', "2", "true", "{}", '{"action": "batch-enrolment-update"}']),
    ),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 500, '"\\ud800"', '"\\u0000"']),
)

EVENT_ACTIONS = [None, "post-publish-process", "relation-cache-update", "batch-enrolment-update"]


def hostile_event(edata: Any, action: str | None, ids: dict[str, Any]) -> dict[str, Any]:
    """A job request whose ``edata`` is anything, with the given action and ids where it is an object."""
    if isinstance(edata, dict):
        edata = {**edata, **ids}
        if action is not None:
            edata["action"] = action
    return {"eid": "BE_JOB_REQUEST", "edata": edata}


#: Job requests (as objects) with a hostile ``edata``: wrong types, ids of every kind.
hostile_events = st.builds(
    hostile_event,
    hostile_values() | st.dictionaries(hostile_key, hostile_values(), max_size=3),
    st.sampled_from(EVENT_ACTIONS),
    st.fixed_dictionaries(
        {},
        optional={
            "userId": st.sampled_from(["u1"]) | hostile_text,
            "courseId": st.sampled_from(["course"]) | hostile_text,
            "batchId": st.sampled_from(["b1"]) | hostile_text,
            "identifier": st.sampled_from(["course", "unit1"]) | hostile_scalar,
            "mimeType": st.just(COLLECTION_MIME_TYPE) | hostile_scalar,
            "contents": hostile_values()
            | st.lists(
                st.fixed_dictionaries(
                    {
                        "contentId": st.sampled_from(["r1", "r2", "unit1", "course"]) | hostile_scalar,
                        "status": hostile_scalar,
                    }
                ),
                max_size=3,
            ),
        },
    ),
)


def _node(children: list[Any], extra: dict[str, Any], identifier: Any, is_collection: bool) -> Any:
    node: dict[str, Any] = {**extra, "identifier": identifier}
    if is_collection:
        node["mimeType"] = COLLECTION_MIME_TYPE
        node["children"] = children
    return node


def hostile_hierarchies() -> st.SearchStrategy[dict[str, Any]]:
    """Trees shaped like hierarchies (a collection root, nodes with identifiers and children), so that
    the parser goes deep into them, with hostile identifiers, metadata and children."""
    identifiers = st.one_of(st.sampled_from(["a", "b", "c", "root"]), hostile_text, hostile_scalar)
    nodes = st.recursive(
        st.builds(
            _node,
            st.just([]),
            st.dictionaries(hostile_key, hostile_scalar, max_size=3),
            identifiers,
            st.booleans(),
        ),
        lambda inner: st.builds(
            _node,
            st.lists(inner | hostile_values(), max_size=4),
            st.dictionaries(hostile_key, hostile_values(), max_size=3),
            identifiers,
            st.booleans(),
        ),
        max_leaves=25,
    )
    return nodes.map(
        lambda node: {**node, "mimeType": COLLECTION_MIME_TYPE, "children": node.get("children", [])}
    )
