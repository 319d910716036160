"""The figures Sunbird Lern's relation-cache-updater test asserts after publishing its two hierarchies
(shared/conformance/sunbird-relation-cache/README.md), in both key layouts, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.cache_layout import CacheLayout, to_json_value
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE
from courseinfra.services import content
from courseinfra.settings import Settings
from tests.support.builders import COURSE_ID, TEXTBOOK_ID, load_json
from tests.support.servers import CONFORMANCE

pytestmark = pytest.mark.conformance_data

COURSE_LEAVES = [
    "do_1130314841730334721104",
    "do_1130314845426565121105",
    "do_1130314847650037761106",
    "do_1130314849898332161107",
    "do_1130314851303178241108",
    "do_1130314857102131201110",
]


def as_sunbird_also_publishes(node: Any, turn: list[int]) -> Any:
    """The hierarchy with what Sunbird also accepts: ``optional`` as the text ``"true"``, ``"True"`` or
    ``"TRUE"`` instead of the boolean, the collection mimeType in other cases, by turns."""
    if isinstance(node, list):
        return [as_sunbird_also_publishes(item, turn) for item in node]
    if not isinstance(node, dict):
        return node
    changed = {key: as_sunbird_also_publishes(value, turn) for key, value in node.items()}
    metadata = changed.get("relationalMetadata")
    if isinstance(metadata, dict) and metadata.get("optional") is True:
        turn[0] += 1
        changed["relationalMetadata"] = {**metadata, "optional": ("true", "True", "TRUE")[turn[0] % 3]}
    if changed.get("mimeType") == COLLECTION_MIME_TYPE:
        turn[0] += 1
        changed["mimeType"] = (COLLECTION_MIME_TYPE.upper(), "Application/Vnd.Ekstep.Content-Collection")[
            turn[0] % 2
        ]
    return changed


@pytest.fixture(
    params=[(CacheLayout.NATIVE, False), (CacheLayout.SUNBIRD, False), (CacheLayout.NATIVE, True)],
    ids=["native", "sunbird", "native-string-flags-and-cased-mimetypes"],
)
def published(request: pytest.FixtureRequest, settings: Settings) -> Iterator[tuple[App, CacheLayout]]:
    layout, variant = request.param
    app = bootstrap(settings.model_copy(update={"cache_layout": layout}))
    for root in (COURSE_ID, TEXTBOOK_ID):
        hierarchy = load_json(CONFORMANCE / f"{root}.json")
        if variant:
            turn = [0]
            hierarchy = as_sunbird_also_publishes(hierarchy, turn)
            assert turn[0] > 0, "the variant changed something"
        content.put_hierarchy(hierarchy, app.uow_factory())
        content.publish(root, app.uow_factory())
    app.relay()
    yield app, layout
    app.close()


def kinds(app: App) -> dict[str, int]:
    counts = {"leafnodes": 0, "optionalnodes": 0, "ancestors": 0, "units": 0}
    for root in (COURSE_ID, TEXTBOOK_ID):
        for key in app.cache.owned_keys(root):
            suffix = key.rsplit(":", 1)[-1]
            counts[suffix if suffix in counts else "units"] += 1
    return counts


def value(app: App, key: str) -> object:
    return to_json_value(app.cache.get(key))


def leaf_key(layout: CacheLayout, root: str, collection: str) -> str:
    return f"{root}:{collection}:leafnodes" if layout is CacheLayout.SUNBIRD else f"{collection}:leafnodes"


def test_key_counts_match_the_peer(published: tuple[App, CacheLayout]) -> None:
    app, _ = published
    assert kinds(app) == {"leafnodes": 18, "optionalnodes": 6, "ancestors": 9, "units": 16}


def test_cache_writes_in_all_are_49(published: tuple[App, CacheLayout]) -> None:
    app, _ = published
    with app.uow_factory() as uow:
        counters = uow.counters.all()["relation-cache-updater"]
    assert counters["cache-writes"] == 49
    assert counters["success"] == 2
    assert counters.get("failed", 0) == 0


def test_course_root_leaf_nodes(published: tuple[App, CacheLayout]) -> None:
    app, layout = published
    assert value(app, leaf_key(layout, COURSE_ID, COURSE_ID)) == COURSE_LEAVES


def test_first_unit_leaf_nodes(published: tuple[App, CacheLayout]) -> None:
    app, layout = published
    assert value(app, leaf_key(layout, COURSE_ID, "do_11305855931318272011245")) == [
        "do_1130314841730334721104",
        "do_1130314845426565121105",
    ]


def test_textbook_root_leaf_nodes(published: tuple[App, CacheLayout]) -> None:
    app, layout = published
    assert value(app, leaf_key(layout, TEXTBOOK_ID, TEXTBOOK_ID)) == [
        "KP_FT_1594149773180",
        "KP_FT_1594149793834",
        "KP_FT_1594149814674",
    ]


def test_empty_sub_units_get_no_key(published: tuple[App, CacheLayout]) -> None:
    app, layout = published
    assert value(app, leaf_key(layout, TEXTBOOK_ID, "do_11305927545288294412006")) is None


def test_resource_under_two_units_has_eleven_ancestors(published: tuple[App, CacheLayout]) -> None:
    app, layout = published
    ancestors = value(app, f"{COURSE_ID}:do_1130314847650037761106:ancestors")
    assert isinstance(ancestors, list)
    assert len(ancestors) == 11
    assert len(set(ancestors)) == 11
    if layout is CacheLayout.NATIVE:
        # Nearest first, both branches in document order, the root last.
        assert ancestors[0] == "do_11305856007009075211332"
        assert ancestors[5] == "do_11305856061513728011342"
        assert ancestors[-1] == COURSE_ID


def test_resource_in_one_branch_has_six_ancestors(published: tuple[App, CacheLayout]) -> None:
    app, layout = published
    ancestors = value(app, f"{COURSE_ID}:do_1130314857102131201110:ancestors")
    assert isinstance(ancestors, list)
    assert len(ancestors) == 6
    if layout is CacheLayout.NATIVE:
        assert ancestors == [
            "do_11305856061513728011342",
            "do_11305856061516185611346",
            "do_11305856061514547211344",
            "do_11305856061520281611348",
            "do_11305856061510451211340",
            COURSE_ID,
        ]


def test_optional_nodes_follow_the_path_to_the_optional_resource(published: tuple[App, CacheLayout]) -> None:
    app, layout = published
    path = [
        COURSE_ID,
        "do_11305855931318272011245",
        "do_11305855931312537611237",
        "do_11305855931317452811243",
        "do_11305855931314995211239",
        "do_11305855931315814411241",
    ]
    for collection in path:
        key = (
            f"{COURSE_ID}:{collection}:optionalnodes"
            if layout is CacheLayout.SUNBIRD
            else f"{collection}:optionalnodes"
        )
        assert value(app, key) == ["do_1130314841730334721104"], key
    other_branch = "do_11305856061510451211340"
    key = (
        f"{COURSE_ID}:{other_branch}:optionalnodes"
        if layout is CacheLayout.SUNBIRD
        else f"{other_branch}:optionalnodes"
    )
    assert value(app, key) is None


def test_unit_metadata_is_kept_without_children(published: tuple[App, CacheLayout]) -> None:
    app, layout = published
    unit = "do_11305855931318272011245"
    metadata = value(app, unit if layout is CacheLayout.SUNBIRD else f"{unit}:metadata")
    assert isinstance(metadata, dict)
    assert metadata["identifier"] == unit
    assert metadata["name"] == "Unit - 1"
    assert "children" not in metadata
    assert value(app, COURSE_ID if layout is CacheLayout.SUNBIRD else f"{COURSE_ID}:metadata") is None
