"""Input built to break the parsers (hierarchies too deep, JSON nested a thousand levels) gets a clear
error naming the limit, through the API and the CLI, never a server error or a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from courseinfra.bootstrap import App
from courseinfra.domain.hierarchy import MAX_DEPTH, MAX_NESTING, nesting_depth
from courseinfra.domain.users import User
from courseinfra.entrypoints.api.limits import MAX_JSON_DEPTH
from courseinfra.settings import Settings
from tests.support.builders import collection, leaf
from tests.support.cli import Cli
from tests.support.http import api_client, error_code, ok


def chain(levels: int) -> dict[str, Any]:
    """A course whose only leaf lies below ``levels`` collections under the root (at depth
    ``levels + 1``)."""
    node: dict[str, Any] = leaf("deepest")
    for level in range(levels, 0, -1):
        node = collection(f"unit-{level}", node)
    return collection("deep-course", node, visibility="Default")


def nested_text(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_nesting_depth_counts_without_recursing_and_stops_past_the_limit() -> None:
    assert nesting_depth(0, 5) == 0
    assert nesting_depth({"a": [1, {"b": []}]}, 5) == 4
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert nesting_depth(deep, 50) == 51


def test_a_leaf_as_deep_as_the_limit_is_stored_and_one_level_more_is_422(app: App) -> None:
    with api_client(app) as client:
        ok(client.put("/v1/content/deep-course/hierarchy", json=chain(MAX_DEPTH - 1)))
        refused = client.put("/v1/content/deep-course/hierarchy", json=chain(MAX_DEPTH))
    assert error_code(refused, 422) == "invalid-hierarchy"
    assert f"at depth {MAX_DEPTH} has children" in refused.json()["error"]["message"]


def test_metadata_nested_past_the_limit_is_422(app: App) -> None:
    metadata: Any = "x"
    for _ in range(MAX_NESTING):
        metadata = {"m": metadata}
    course = collection("meta-course", {**leaf("r1"), "extra": metadata}, visibility="Default")
    with api_client(app) as client:
        refused = client.put("/v1/content/meta-course/hierarchy", json=course)
    assert error_code(refused, 422) == "invalid-hierarchy"
    assert str(MAX_NESTING) in refused.json()["error"]["message"]


@pytest.mark.parametrize("levels", [600, 5000, 100_000])
@pytest.mark.parametrize("path", ["/v1/content/x/hierarchy", "/v1/groups"])
def test_a_body_nested_past_the_json_limit_is_422_naming_it(app: App, path: str, levels: int) -> None:
    with api_client(app) as client:
        method = client.put if "content" in path else client.post
        answer = method(path, content=nested_text(levels), headers={"content-type": "application/json"})
    assert error_code(answer, 422) == "invalid-body"
    assert str(MAX_JSON_DEPTH) in answer.json()["error"]["message"]


def test_the_hierarchy_depth_is_a_setting(app: App) -> None:
    shallow = App(**{**vars(app), "settings": app.settings.model_copy(update={"max_hierarchy_depth": 5})})
    with api_client(shallow) as client:
        ok(client.put("/v1/content/deep-course/hierarchy", json=chain(4)))
        refused = client.put("/v1/content/deep-course/hierarchy", json=chain(5))
    assert error_code(refused, 422) == "invalid-hierarchy"
    assert "at depth 5 has children" in refused.json()["error"]["message"]


def test_a_body_larger_than_the_limit_is_413_whether_or_not_it_declares_its_length(app: App) -> None:
    small = App(**{**vars(app), "settings": app.settings.model_copy(update={"max_body_bytes": 4096})})
    line = '{"eid": "BE_JOB_REQUEST"}\n'
    with api_client(small) as client:
        declared = client.post("/v1/events", content=line * 400)
        assert error_code(declared, 413) == "body-too-large"
        assert "4096 bytes" in declared.json()["error"]["message"]
        streamed = client.post("/v1/events", content=iter([line.encode()] * 400))
        assert error_code(streamed, 413) == "body-too-large"
        within = client.post("/v1/events", content=line * 10)
        assert within.status_code == 200, within.text
    documented = api_client(app).get("/openapi.json").json()["paths"]["/v1/events"]["post"]["responses"]
    assert "413" in documented


def test_the_cli_names_the_limit_and_prints_no_traceback(settings: Settings, tmp_path: Path) -> None:
    cli = Cli(settings)
    too_deep = tmp_path / "too-deep.json"
    too_deep.write_text(json.dumps(chain(MAX_DEPTH)), encoding="utf-8")
    refused = cli("content", "put", str(too_deep))
    assert refused.returncode == 1
    assert refused.stderr.startswith("courseinfra: invalid-hierarchy: collection unit-100 at depth 100")
    unreadable = tmp_path / "unreadable.json"
    unreadable.write_text(nested_text(5000), encoding="utf-8")
    refused = cli("content", "put", str(unreadable))
    assert refused.returncode == 1
    assert "too deeply" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_change_of_a_group_without_if_match_is_428_and_changes_nothing(app: App) -> None:
    with api_client(app) as client:
        created = ok(client.post("/v1/groups", json={"group_id": "g", "name": "G", "scope": "instance"}), 201)
        for method, body in (
            ("PUT", {"name": "H", "scope": "instance"}),
            ("PATCH", {"name": "H"}),
            ("DELETE", None),
        ):
            refused = client.request(method, "/v1/groups/g", json=body)
            assert error_code(refused, 428) == "precondition-required", method
        assert ok(client.get("/v1/groups/g"))["version"] == created["version"]
        renamed = ok(client.patch("/v1/groups/g", json={"name": "H"}, headers={"If-Match": '"g.1"'}))
        assert renamed["version"] == 2
        assert client.delete("/v1/groups/g", headers={"If-Match": "*"}).status_code == 204


@pytest.mark.parametrize("at", [0, 1700000000, True, "2999-01-01T00:00:00Z"])
def test_a_login_time_that_is_a_number_or_in_the_future_is_422(app: App, at: Any) -> None:
    with app.uow_factory() as uow:
        uow.users.upsert_many([User("u1")], datetime.now(UTC))
        uow.commit()
    with api_client(app) as client:
        refused = client.post("/v1/users/u1/logins", json={"at": at})
        assert error_code(refused, 422) == "invalid-request"
        assert ok(client.get("/v1/users/u1"))["last_login_at"] is None


@pytest.mark.parametrize("as_json", [False, True])
def test_an_event_longer_than_the_line_limit_is_kept_cut_short_through_the_api(
    app: App, as_json: bool
) -> None:
    limited = App(
        **{**vars(app), "settings": app.settings.model_copy(update={"ingest_max_line_bytes": 1024})}
    )
    long_event = {"eid": "BE_JOB_REQUEST", "edata": {"action": "x", "padding": "p" * 5000}}
    short_event = {"eid": "BE_JOB_REQUEST", "edata": {"action": "x"}}
    if as_json:
        body, content_type = json.dumps([long_event, short_event]), "application/json"
    else:
        body, content_type = (
            json.dumps(long_event) + "\n" + json.dumps(short_event) + "\n",
            "application/x-ndjson",
        )
    with api_client(limited) as client:
        answer = ok(client.post("/v1/events", content=body, headers={"content-type": content_type}))
        assert len(answer["rejected"]) == 2, answer
        kept = ok(client.get("/v1/failed-events", params={"skipped": True}))
    codes = [event["code"] for event in kept]
    assert "line-too-long" in codes
    too_long = next(event for event in kept if event["code"] == "line-too-long")
    assert len(too_long["payload"]) <= 1024


def test_a_json_event_nested_past_what_orjson_writes_is_read_not_a_server_error(app: App) -> None:
    deep: Any = "x"
    for _ in range(400):
        deep = {"d": deep}
    event = {"eid": "BE_JOB_REQUEST", "edata": {"action": "post-publish-process", "deep": deep}}
    with api_client(app) as client:
        answer = client.post("/v1/events", json=[event])
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["rejected"]) == 1


@pytest.mark.parametrize(
    "path",
    ["/v1/content/a%00b/hierarchy", "/v1/batches/b%00", "/v1/groups?scope=course:%00", "/v1/users/u%00"],
)
def test_a_nul_character_in_the_url_is_422_on_every_store(app: App, path: str) -> None:
    with api_client(app) as client:
        assert error_code(client.get(path), 422) == "invalid-request"
