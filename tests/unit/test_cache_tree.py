"""The relation cache read back as a tree (``domain.cache_tree``), in both layouts: the nesting the
hierarchy had, leaves under their nearest collection, a unit holding only a sub-unit, a leaf placed
twice, and keys of no known shape."""

from __future__ import annotations

import pytest

from courseinfra.domain.cache_layout import CacheLayout, CacheText, cache_entries
from courseinfra.domain.cache_tree import CachedCollection, cache_tree
from courseinfra.domain.hierarchy import compute_relations, parse_hierarchy
from tests.support.builders import collection, leaf

COURSE = collection(
    "root",
    collection(
        "u1",
        collection("s1", leaf("r1"), leaf("r2", optional=True), name="Sub one"),
        leaf("r3"),
        name="Unit one",
    ),
    collection("u2", collection("only", leaf("r4"), name="Only child"), name="Unit two"),
    collection("u3", leaf("r5"), leaf("r1"), name="Unit three"),
    leaf("r6"),
    visibility="Default",
)


def shape(node: CachedCollection) -> object:
    """A collection as ``(id, [children], [leaves])``."""
    return (
        node.collection_id,
        [shape(child) for child in node.children],
        [leaf.leaf_id for leaf in node.leaves],
    )


@pytest.mark.parametrize("layout", list(CacheLayout))
def test_the_tree_has_the_hierarchys_nesting(layout: CacheLayout) -> None:
    entries = cache_entries(compute_relations(parse_hierarchy(COURSE)), layout)
    tree = cache_tree("root", dict(entries), layout)
    assert tree.root is not None
    assert tree.key_count == len(entries)
    assert tree.other_keys == ()
    assert shape(tree.root) == (
        "root",
        [
            ("u1", [("s1", [], ["r1", "r2"])], ["r3"]),
            ("u3", [], ["r1", "r5"]),  # r1 is placed twice: it shows in both places
            ("u2", [("only", [], ["r4"])], []),  # by name: "Unit one", "Unit three", "Unit two"
        ],
        ["r6"],
    )
    [u1, _, u2] = tree.root.children
    assert (u1.name, u1.leaf_count, u1.optional_count) == ("Unit one", 3, 1)
    assert u2.children[0].name == "Only child"
    r2 = u1.children[0].leaves[1]
    assert r2.optional
    assert set(r2.ancestors) == {"s1", "u1", "root"}
    if layout is CacheLayout.NATIVE:
        assert r2.ancestors == ("s1", "u1", "root")  # nearest first, as stored (a set in sunbird's)


def test_a_root_without_leaves_and_unknown_keys() -> None:
    tree = cache_tree(
        "root",
        {"u9:metadata": CacheText('{"name": "Empty"}'), "stray": CacheText("x"), "odd:leafnodes": None},
        CacheLayout.NATIVE,
    )
    assert tree.root is None
    assert tree.units_without_leaves == ("u9",)
    assert tree.other_keys == ("stray",)
