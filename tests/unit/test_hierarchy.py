"""The pure relation computation: examples, invalid input, and properties over random hierarchies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from courseinfra.domain.cache_layout import CacheLayout, CacheList, CacheSet, cache_entries
from courseinfra.domain.errors import InvalidHierarchy
from courseinfra.domain.hierarchy import (
    COLLECTION_MIME_TYPE,
    MAX_DEPTH,
    compute_relations,
    is_collection_mime_type,
    is_optional_flag,
    parse_hierarchy,
)
from tests.support.builders import collection, leaf

DEMO = collection(
    "democourse",
    collection("courseunit1", leaf("resource1"), leaf("resource2")),
    collection("courseunit2", leaf("resource3"), leaf("resource4")),
    visibility="Default",
)


def test_the_seed_sample_course() -> None:
    relations = compute_relations(parse_hierarchy(DEMO))
    assert relations.leaf_nodes["courseunit1"] == {"resource1", "resource2"}
    assert relations.leaf_nodes["democourse"] == {"resource1", "resource2", "resource3", "resource4"}
    assert relations.ancestors["resource1"] == ("courseunit1", "democourse")
    assert set(relations.units) == {"courseunit1", "courseunit2"}
    assert relations.optional_nodes == {}


def test_seed_key_names_in_the_native_layout() -> None:
    entries = cache_entries(compute_relations(parse_hierarchy(DEMO)), CacheLayout.NATIVE)
    assert entries["courseunit1:leafnodes"] == CacheSet(frozenset({"resource1", "resource2"}))
    assert entries["democourse:resource1:ancestors"] == CacheList(("courseunit1", "democourse"))


def test_an_optional_unit_makes_its_leaves_optional_only_above_it() -> None:
    tree = collection(
        "root",
        collection("u1", collection("u2", leaf("r1")), relationalMetadata={"optional": True}),
        visibility="Default",
    )
    relations = compute_relations(parse_hierarchy(tree))
    assert relations.optional_nodes == {"root": {"r1"}}


def test_a_resource_reused_under_two_units_lists_both_branches_then_the_root() -> None:
    tree = collection(
        "root", collection("a", leaf("r")), collection("b", collection("b1", leaf("r"))), visibility="Default"
    )
    assert compute_relations(parse_hierarchy(tree)).ancestors["r"] == ("a", "b1", "b", "root")


def test_a_very_deep_hierarchy_needs_no_recursion() -> None:
    node: dict[str, Any] = leaf("bottom")
    for depth in range(5000):
        node = collection(f"u{depth}", node)
    course = collection("root", node, visibility="Default")
    relations = compute_relations(parse_hierarchy(course, max_depth=None))
    assert len(relations.ancestors["bottom"]) == 5001
    with pytest.raises(InvalidHierarchy, match=f"at depth {MAX_DEPTH} has children"):
        parse_hierarchy(course)


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ([], "must be a JSON object"),
        ({"mimeType": COLLECTION_MIME_TYPE}, "non-empty string 'identifier'"),
        ({"identifier": "x", "mimeType": "application/pdf"}, "is not a collection"),
        ({"identifier": "x", "mimeType": COLLECTION_MIME_TYPE, "children": {}}, "'children' must be a list"),
        (
            collection("root", collection("u", leaf("r")), collection("u")),
            "collection u occurs more than once",
        ),
        (
            collection("root", collection("u", leaf("root-leaf")), leaf("u")),
            "names both a collection and a leaf",
        ),
        (collection("root", collection("u", 7)), "child 0 of u: a node must be a JSON object"),  # type: ignore[arg-type]
    ],
)
def test_invalid_hierarchies_are_refused_with_the_reason(tree: Any, message: str) -> None:
    with pytest.raises(InvalidHierarchy, match=message):
        parse_hierarchy(tree)


@st.composite
def hierarchies(draw: st.DrawFn) -> dict[str, Any]:
    """Random trees: units nested at any depth, leaves drawn from a small pool so that some repeat."""
    leaf_pool = [f"r{i}" for i in range(12)]
    counter = iter(range(10_000))

    def unit(depth: int) -> dict[str, Any]:
        children: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(0, 4))):
            if depth < 4 and draw(st.booleans()):
                child = unit(depth + 1)
            else:
                child = leaf(draw(st.sampled_from(leaf_pool)))
            if draw(st.integers(0, 9)) == 0:
                child["relationalMetadata"] = {"optional": True}
            children.append(child)
        return collection(f"u{next(counter)}", *children)

    return collection("root", *unit(0)["children"], visibility="Default")


def naive_leaves(node: dict[str, Any]) -> set[str]:
    if node["mimeType"] != COLLECTION_MIME_TYPE:
        return {node["identifier"]}
    return set().union(*(naive_leaves(child) for child in node.get("children", [])))


def collections_of(node: dict[str, Any]) -> list[dict[str, Any]]:
    if node["mimeType"] != COLLECTION_MIME_TYPE:
        return []
    found = [node]
    for child in node.get("children", []):
        found += collections_of(child)
    return found


@settings(max_examples=200, deadline=None)
@given(hierarchies())
def test_every_leaf_s_ancestors_end_with_the_root(tree: dict[str, Any]) -> None:
    relations = compute_relations(parse_hierarchy(tree))
    for path in relations.ancestors.values():
        assert path[-1] == "root"
        assert len(set(path)) == len(path)


@settings(max_examples=200, deadline=None)
@given(hierarchies())
def test_a_collection_s_leaves_are_the_union_of_its_children_s(tree: dict[str, Any]) -> None:
    relations = compute_relations(parse_hierarchy(tree))
    for node in collections_of(tree):
        expected: set[str] = set()
        for child in node.get("children", []):
            expected |= naive_leaves(child)
        assert relations.leaf_nodes.get(node["identifier"], frozenset()) == expected


@settings(max_examples=200, deadline=None)
@given(hierarchies())
def test_leaf_sets_and_ancestors_agree(tree: dict[str, Any]) -> None:
    relations = compute_relations(parse_hierarchy(tree))
    for collection_id, leaves in relations.leaf_nodes.items():
        assert leaves, "no key for an empty set"
        for leaf_id in leaves:
            assert collection_id in relations.ancestors[leaf_id]
    for collection_id, optional in relations.optional_nodes.items():
        assert optional <= relations.leaf_nodes[collection_id]


@settings(max_examples=100, deadline=None)
@given(hierarchies(), st.sampled_from(list(CacheLayout)))
def test_every_key_is_non_empty_and_kinds_follow_the_layout(
    tree: dict[str, Any], layout: CacheLayout
) -> None:
    entries = cache_entries(compute_relations(parse_hierarchy(tree)), layout)
    for key, value in entries.items():
        if key.endswith(":ancestors"):
            assert isinstance(value, CacheSet if layout is CacheLayout.SUNBIRD else CacheList)
        if isinstance(value, CacheSet):
            assert value.members


@pytest.mark.parametrize(
    ("flag", "optional"),
    [
        (True, True),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        (False, False),
        ("false", False),
        ("yes", False),
        (1, False),
        (None, False),
        (" true", False),
    ],
)
def test_an_optional_flag_is_read_as_sunbird_reads_it(flag: object, optional: bool) -> None:
    assert is_optional_flag(flag) is optional


@pytest.mark.parametrize(
    ("mime_type", "collection"),
    [
        (COLLECTION_MIME_TYPE, True),
        (COLLECTION_MIME_TYPE.upper(), True),
        ("Application/Vnd.Ekstep.Content-Collection", True),
        ("application/pdf", False),
        (None, False),
        (COLLECTION_MIME_TYPE + " ", False),
    ],
)
def test_a_collection_mime_type_is_compared_ignoring_case(mime_type: object, collection: bool) -> None:
    assert is_collection_mime_type(mime_type) is collection
