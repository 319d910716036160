"""The REST API, through FastAPI's test client, on a wired application (``api_app``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from courseinfra import __version__
from courseinfra.bootstrap import App
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE
from courseinfra.entrypoints.api import create_app
from tests.support.http import api_client
from tests.support.servers import CONFORMANCE

#: Sunbird's course, from the peer systems' conformance data.
pytestmark = pytest.mark.conformance_data
COURSE = "do_11305855864948326411234"
COURSE_RESOURCES = [
    "do_1130314841730334721104",
    "do_1130314845426565121105",
    "do_1130314847650037761106",
    "do_1130314849898332161107",
    "do_1130314851303178241108",
    "do_1130314857102131201110",
]
UPDATER = "relation-cache-updater"


@pytest.fixture
def api_app(app: App) -> App:
    """The application the API serves, on every backend (see tests/conftest.py)."""
    return app


@pytest.fixture
def client(api_app: App) -> Iterator[TestClient]:
    with api_client(api_app) as client:
        yield client


def course() -> dict[str, Any]:
    hierarchy: dict[str, Any] = json.loads((CONFORMANCE / f"{COURSE}.json").read_text(encoding="utf-8"))
    return hierarchy


def small_collection(root: str) -> dict[str, Any]:
    return {
        "identifier": root,
        "mimeType": COLLECTION_MIME_TYPE,
        "contentType": "Course",
        "children": [
            {
                "identifier": f"{root}_unit",
                "mimeType": COLLECTION_MIME_TYPE,
                "visibility": "Parent",
                "children": [{"identifier": f"{root}_pdf", "mimeType": "application/pdf"}],
            }
        ],
    }


def post_publish(identifier: str) -> str:
    return json.dumps(
        {
            "eid": "BE_JOB_REQUEST",
            "edata": {
                "action": "post-publish-process",
                "identifier": identifier,
                "mimeType": COLLECTION_MIME_TYPE,
            },
        }
    )


def put(client: TestClient, hierarchy: dict[str, Any], identifier: str | None = None) -> Any:
    response = client.put(f"/v1/content/{identifier or hierarchy['identifier']}/hierarchy", json=hierarchy)
    assert response.status_code == 200, response.text
    return response.json()


def post_lines(client: TestClient, *lines: str) -> Any:
    response = client.post(
        "/v1/events", content="\n".join(lines) + "\n", headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def all_failed(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while page := client.get("/v1/failed-events", params={**params, "limit": 1000, "after": after}).json():
        events += page
        after = page[-1]["id"]
    return events


def job_counters(client: TestClient) -> dict[tuple[str, str], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.labels["job"], sample.labels["counter"]): sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "courseinfra_job"
        for sample in family.samples
        if sample.name == "courseinfra_job_total"
    }


def open_failed(client: TestClient, job: str) -> float:
    text = client.get("/metrics").text
    return next(
        (
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "courseinfra_failed_events_open"
            for sample in family.samples
            if sample.labels["job"] == job
        ),
        0.0,
    )


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_put_then_publish_builds_the_relation_cache(client: TestClient) -> None:
    assert put(client, course()) == {"identifier": COURSE, "version": 1}
    stored = client.get(f"/v1/content/{COURSE}/hierarchy").json()
    assert (stored["identifier"], stored["version"], stored["published_at"]) == (COURSE, 1, None)
    assert stored["hierarchy"] == course()

    published = client.post(f"/v1/content/{COURSE}/publish")

    assert published.status_code == 200, published.text
    body = published.json()
    assert (body["identifier"], body["version"]) == (COURSE, 1)
    assert body["event"]["eid"] == "BE_JOB_REQUEST"
    assert body["event"]["edata"]["action"] == "post-publish-process"
    assert body["event"]["edata"]["identifier"] == COURSE
    # 16 leafnodes + 6 ancestors + 6 optionalnodes + 15 units (the conformance README's figures)
    assert body["cache_keys"] == 43
    leaves = client.get(f"/v1/cache/{COURSE}:leafnodes")
    assert leaves.status_code == 200
    assert leaves.json() == {"key": f"{COURSE}:leafnodes", "value": COURSE_RESOURCES}
    ancestors = client.get(f"/v1/cache/{COURSE}:do_1130314857102131201110:ancestors").json()["value"]
    assert len(ancestors) == 6
    assert ancestors[-1] == COURSE
    assert client.get(f"/v1/content/{COURSE}/hierarchy").json()["published_at"] is not None


def test_cache_owners_lists_every_key_of_a_root_with_its_value(client: TestClient) -> None:
    put(client, course())
    client.post(f"/v1/content/{COURSE}/publish")

    owned = client.get(f"/v1/cache-owners/{COURSE}").json()

    assert len(owned) == 43
    assert list(owned) == sorted(owned)
    assert owned[f"{COURSE}:leafnodes"] == COURSE_RESOURCES
    assert client.get("/v1/cache-owners/do_nobody").json() == {}


def test_a_new_put_bumps_the_version(client: TestClient) -> None:
    put(client, course())
    assert put(client, course()) == {"identifier": COURSE, "version": 2}
    assert client.post(f"/v1/content/{COURSE}/publish").json()["version"] == 2


def test_put_under_another_identifier_is_a_conflict(client: TestClient) -> None:
    response = client.put("/v1/content/do_other/hierarchy", json=course())

    assert_error(response, 409, "identifier-mismatch")
    assert COURSE in response.json()["error"]["message"]
    assert_error(client.get(f"/v1/content/{COURSE}/hierarchy"), 404, "content-not-found")


def test_put_of_an_invalid_hierarchy_is_unprocessable(client: TestClient) -> None:
    not_a_collection = {"identifier": "do_pdf", "mimeType": "application/pdf"}

    response = client.put("/v1/content/do_pdf/hierarchy", json=not_a_collection)

    assert_error(response, 422, "invalid-hierarchy")
    assert_error(client.get("/v1/content/do_pdf/hierarchy"), 404, "content-not-found")


def test_a_body_that_is_not_an_object_is_an_invalid_request(client: TestClient) -> None:
    assert_error(client.put("/v1/content/do_1/hierarchy", json=[1, 2]), 422, "invalid-request")


def test_not_found(client: TestClient) -> None:
    assert_error(client.post("/v1/content/do_unknown/publish"), 404, "content-not-found")
    assert_error(client.get("/v1/content/do_unknown/hierarchy"), 404, "content-not-found")
    assert_error(client.get("/v1/cache/do_unknown:leafnodes"), 404, "cache-key-not-found")
    assert_error(client.post("/v1/failed-events/987654/replay"), 404, "failed-event-not-found")
    assert_error(client.get("/v1/no-such-route"), 404, "not-found")


def test_ingest_processes_good_lines_and_keeps_the_others(client: TestClient) -> None:
    put(client, course())
    malformed = '{"eid": "BE_JOB_REQUEST", "edata": '

    report = post_lines(client, post_publish(COURSE), malformed, post_publish("do_api_unknown_root"))

    assert report["jobs"][UPDATER]["success"] == 1
    assert report["jobs"][UPDATER]["failed"] == 1
    assert report["jobs"]["ingest"]["failed"] == 1
    rejected = {r["code"]: r for r in report["rejected"]}
    assert set(rejected) == {"malformed-json", "hierarchy-not-found"}
    assert (rejected["malformed-json"]["source"], rejected["malformed-json"]["job"]) == ("api:2", "ingest")
    assert (rejected["hierarchy-not-found"]["source"], rejected["hierarchy-not-found"]["job"]) == (
        "api:3",
        UPDATER,
    )
    assert client.get(f"/v1/cache/{COURSE}:leafnodes").json()["value"] == COURSE_RESOURCES

    kept = {event["code"]: event for event in all_failed(client)}
    assert set(kept) == {"malformed-json", "hierarchy-not-found"}
    assert kept["malformed-json"]["payload"] == malformed
    assert kept["hierarchy-not-found"]["payload"] == post_publish("do_api_unknown_root")
    assert kept["hierarchy-not-found"]["job"] == UPDATER
    assert kept["hierarchy-not-found"]["outcome"] == "failed"
    assert kept["hierarchy-not-found"]["attempts"] == 1
    assert kept["hierarchy-not-found"]["resolved_at"] is None
    assert [e["code"] for e in all_failed(client, job=UPDATER)] == ["hierarchy-not-found"]


def test_ingest_takes_a_json_array_of_events(client: TestClient) -> None:
    put(client, course())
    events = [json.loads(post_publish(COURSE)), ["not", "an", "object"]]

    response = client.post("/v1/events", json=events)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["jobs"][UPDATER]["success"] == 1
    assert [r["code"] for r in report["rejected"]] == ["not-an-object"]
    assert client.get(f"/v1/cache/{COURSE}:leafnodes").json()["value"] == COURSE_RESOURCES


def test_ingest_refuses_a_json_body_that_is_not_json(client: TestClient) -> None:
    response = client.post("/v1/events", content=b"[{", headers={"content-type": "application/json"})

    assert_error(response, 422, "invalid-body")
    assert all_failed(client, skipped=True) == []


def test_failed_events_are_listed_by_code(client: TestClient) -> None:
    report = post_lines(client, post_publish("do_api_code_course"), "{not json")
    assert sorted(r["code"] for r in report["rejected"]) == ["hierarchy-not-found", "malformed-json"]

    assert [k["code"] for k in all_failed(client, code="malformed-json")] == ["malformed-json"]
    assert [k["code"] for k in all_failed(client, code="hierarchy-not-found")] == ["hierarchy-not-found"]
    assert all_failed(client, code="no-such-code") == []


def test_replay_resolves_an_event_once_its_hierarchy_is_stored(client: TestClient) -> None:
    root = "do_api_late_course"
    report = post_lines(client, post_publish(root))
    assert [r["code"] for r in report["rejected"]] == ["hierarchy-not-found"]
    [kept] = all_failed(client, job=UPDATER)

    again = client.post(f"/v1/failed-events/{kept['id']}/replay")
    assert again.status_code == 200, again.text
    assert again.json() == {
        "event_id": kept["id"],
        "resolved": False,
        "code": "hierarchy-not-found",
        "reason": f"no hierarchy is stored for {root}",
    }

    put(client, small_collection(root))
    replayed = client.post(f"/v1/failed-events/{kept['id']}/replay")

    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["event_id"] == kept["id"]
    assert replayed.json()["resolved"] is True
    assert client.get(f"/v1/cache/{root}:leafnodes").json()["value"] == [f"{root}_pdf"]
    assert all_failed(client, job=UPDATER) == []
    [resolved] = all_failed(client, job=UPDATER, resolved=True)
    assert resolved["attempts"] == 3
    assert resolved["resolved_at"] is not None


def test_metrics_expose_the_cumulative_counters(client: TestClient) -> None:
    before = job_counters(client)
    open_before = open_failed(client, UPDATER)
    put(client, course())
    put(client, small_collection("do_api_metrics"))

    report = post_lines(
        client, post_publish(COURSE), post_publish("do_api_metrics"), post_publish("do_api_missing")
    )

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "courseinfra_job_total{" in response.text
    after = job_counters(client)
    success = after[UPDATER, "success"] - before.get((UPDATER, "success"), 0.0)
    assert success == report["jobs"][UPDATER]["success"] == 2
    failed = after[UPDATER, "failed"] - before.get((UPDATER, "failed"), 0.0)
    assert failed == report["jobs"][UPDATER]["failed"] == 1
    assert after[UPDATER, "cache-writes"] > before.get((UPDATER, "cache-writes"), 0.0)
    counters = client.get("/v1/counters").json()
    assert after[UPDATER, "success"] == counters[UPDATER]["success"]
    assert open_failed(client, UPDATER) == open_before + 1


def test_counters(client: TestClient) -> None:
    put(client, course())
    client.post(f"/v1/content/{COURSE}/publish")

    counters = client.get("/v1/counters").json()

    assert counters[UPDATER]["success"] >= 1
    assert counters[UPDATER]["cache-writes"] >= 43


def test_openapi_describes_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    assert spec["info"]["title"] == "courseinfra"
    assert spec["info"]["version"] == __version__
    assert {
        "/v1/content/{identifier}/hierarchy",
        "/v1/content/{identifier}/publish",
        "/v1/events",
        "/v1/cache/{key}",
        "/v1/cache-owners/{root}",
        "/v1/failed-events",
        "/v1/failed-events/{id}/replay",
        "/v1/counters",
        "/metrics",
        "/healthz",
    } <= set(spec["paths"])
    assert set(spec["paths"]["/v1/content/{identifier}/hierarchy"]) == {"get", "put"}
    assert "application/x-ndjson" in spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert all(operation.get("tags") for path in spec["paths"].values() for operation in path.values()), (
        "every route is tagged"
    )


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}


def test_without_an_app_it_bootstraps_at_start_and_closes_at_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURSEINFRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COURSEINFRA_DATABASE_URL", raising=False)
    monkeypatch.delenv("COURSEINFRA_REDIS_URL", raising=False)

    api = create_app()

    assert not (tmp_path / "home").exists(), "nothing connects before start-up"
    with TestClient(api) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        refused = client.put(
            "/v1/content/do_api_lifespan/hierarchy", json=small_collection("do_api_lifespan")
        )
        assert refused.status_code == 401, "no token, no write"
    assert (tmp_path / "home" / "courseinfra.sqlite3").exists()
    assert api.state.courseinfra is None
