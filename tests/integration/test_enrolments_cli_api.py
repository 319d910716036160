"""Batches, enrolments, progress and AUDIT events through the API and the ``courseinfra`` command, on
every backend: the operator's view of the course metrics aggregator."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from courseinfra.bootstrap import App
from courseinfra.settings import Settings
from tests.support.cli import Cli, fails, run_json, run_lines
from tests.support.http import api_client, error_code, ok
from tests.support.servers import EXAMPLES

COURSE = "democourse"
FIRST = [("resource1", 2), ("resource2", 1)]
REST = [("resource2", 2), ("resource3", 2)]

AUDIT_AFTER_FIRST = Counter(
    {
        ("Course", COURSE, "enrol"): 1,
        ("CourseUnit", "courseunit1", "start"): 1,
        ("Content", "resource1", "start"): 1,
        ("Content", "resource1", "complete"): 1,
        ("Content", "resource2", "start"): 1,
    }
)
AUDIT_AFTER_ALL = AUDIT_AFTER_FIRST + Counter(
    {
        ("Content", "resource2", "complete"): 1,
        ("Content", "resource3", "start"): 1,
        ("Content", "resource3", "complete"): 1,
        ("CourseUnit", "courseunit1", "complete"): 1,
        # courseunit2's required leaves are resource3 only: resource4 is optional.
        ("CourseUnit", "courseunit2", "start"): 1,
        ("CourseUnit", "courseunit2", "complete"): 1,
        ("Course", COURSE, "complete"): 1,
    }
)


def progress_line(user: str, contents: list[tuple[str, int]], batch: str = "B1") -> str:
    return json.dumps(
        {
            "eid": "BE_JOB_REQUEST",
            "edata": {
                "action": "batch-enrolment-update",
                "userId": user,
                "courseId": COURSE,
                "batchId": batch,
                "contents": [{"contentId": c, "status": s} for c, s in contents],
            },
        },
        separators=(",", ":"),
    )


def audit_triples(events: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    return Counter((e["object"]["type"], e["object"]["id"], e["edata"]["type"]) for e in events)


# --- the API -------------------------------------------------------------------------------------------


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with api_client(app) as client:
        yield client


def post_events(client: TestClient, *lines: str) -> Any:
    return ok(
        client.post(
            "/v1/events", content="\n".join(lines) + "\n", headers={"content-type": "application/x-ndjson"}
        )
    )


def api_audits(client: TestClient, user: str) -> Counter[tuple[str, str, str]]:
    entries = ok(client.get("/v1/audit-events", params={"user": user}))
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    return audit_triples([e["event"] for e in entries])


def publish_democourse(client: TestClient) -> None:
    hierarchy = json.loads((EXAMPLES / "democourse.json").read_text(encoding="utf-8"))
    ok(client.put(f"/v1/content/{COURSE}/hierarchy", json=hierarchy))
    ok(client.post(f"/v1/content/{COURSE}/publish"))


def test_progress_through_the_api(client: TestClient) -> None:
    publish_democourse(client)
    batch = ok(
        client.post(
            "/v1/batches",
            json={
                "batchid": "B1",
                "courseid": COURSE,
                "name": "Batch 1",
                "startdate": "2024-01-01",
                "mentors": ["m1"],
                "createdfor": ["org1"],
            },
        ),
        201,
    )
    assert batch["batchid"] == "B1"
    assert batch["courseid"] == COURSE
    assert (batch["startdate"], batch["enddate"], batch["enrollmenttype"]) == ("2024-01-01", None, "open")
    assert (batch["mentors"], batch["createdfor"]) == (["m1"], ["org1"])
    assert ok(client.get("/v1/batches/B1")) == batch
    assert ok(client.get("/v1/batches", params={"course": COURSE})) == [batch]
    assert (
        error_code(
            client.post("/v1/batches", json={"batchid": "B1", "courseid": COURSE, "name": "again"}), 409
        )
        == "batch-exists"
    )
    assert (
        error_code(
            client.post("/v1/batches", json={"batchid": "B9", "courseid": "nosuchcourse", "name": "x"}), 404
        )
        == "course-not-found"
    )
    assert error_code(client.get("/v1/batches/B9"), 404) == "batch-not-found"

    enrolled = ok(client.put("/v1/batches/B1/enrolments/u1", json={"addedby": "admin"}), 201)
    assert enrolled["created"] is True
    assert (enrolled["userid"], enrolled["courseid"], enrolled["batchid"]) == ("u1", COURSE, "B1")
    assert (enrolled["active"], enrolled["addedby"], enrolled["status"], enrolled["progress"]) == (
        True,
        "admin",
        0,
        0,
    )
    again = ok(client.put("/v1/batches/B1/enrolments/u1"), 200)
    assert again["created"] is False
    assert error_code(client.put("/v1/batches/B9/enrolments/u1"), 404) == "batch-not-found"

    line = progress_line("u1", FIRST)
    report = post_events(client, line)
    assert report["rejected"] == []
    enrolment = ok(client.get(f"/v1/enrolments/u1/{COURSE}/B1"))
    assert (enrolment["completionpercentage"], enrolment["progress"], enrolment["status"]) == (33, 1, 1)
    assert enrolment["contentstatus"] == {"resource1": 2, "resource2": 1}
    assert (enrolment["lastreadcontentid"], enrolment["lastreadcontentstatus"]) == ("resource2", 1)
    assert enrolment["completedon"] is None
    activity = ok(client.get(f"/v1/enrolments/u1/{COURSE}/B1/activity"))
    assert activity["course"] == {"completedCount": 1, "leafNodesCount": 3, "progress": 33}
    assert activity["units"] == {"courseunit1": {"completedCount": 1, "leafNodesCount": 2, "progress": 50}}
    assert api_audits(client, "u1") == AUDIT_AFTER_FIRST

    assert post_events(client, line)["rejected"] == []
    assert api_audits(client, "u1") == AUDIT_AFTER_FIRST, "a duplicate event emits no AUDIT event"

    assert post_events(client, progress_line("u1", REST))["rejected"] == []
    enrolment = ok(client.get(f"/v1/enrolments/u1/{COURSE}/B1"))
    assert (enrolment["completionpercentage"], enrolment["progress"], enrolment["status"]) == (100, 3, 2)
    assert enrolment["completedon"] is not None
    activity = ok(client.get(f"/v1/enrolments/u1/{COURSE}/B1/activity"))
    assert activity["course"] == {"completedCount": 3, "leafNodesCount": 3, "progress": 100}
    assert activity["units"]["courseunit2"] == {"completedCount": 1, "leafNodesCount": 1, "progress": 100}
    assert api_audits(client, "u1") == AUDIT_AFTER_ALL
    assert api_audits(client, "nobody") == Counter()

    stranger = post_events(client, progress_line("u2", FIRST))
    assert [(r["code"], r["outcome"]) for r in stranger["rejected"]] == [("enrolment-not-found", "failed")]
    kept = ok(client.get("/v1/failed-events"))
    assert [k["code"] for k in kept] == ["enrolment-not-found"]
    assert json.loads(kept[0]["payload"])["edata"]["userId"] == "u2"
    assert error_code(client.get(f"/v1/enrolments/u2/{COURSE}/B1"), 404) == "enrolment-not-found"
    assert error_code(client.get(f"/v1/enrolments/u2/{COURSE}/B1/activity"), 404) == "enrolment-not-found"

    participants = ok(client.get("/v1/batches/B1/enrolments"))
    assert [p["userid"] for p in participants] == ["u1"]
    assert participants[0] == ok(client.get(f"/v1/enrolments/u1/{COURSE}/B1"))
    assert ok(client.get("/v1/batches/B1/enrolments", params={"after": "u1"})) == []
    assert error_code(client.get("/v1/batches/B9/enrolments"), 404) == "batch-not-found"
    assert [(e["courseid"], e["batchid"]) for e in ok(client.get("/v1/users/u1/enrolments"))] == [
        (COURSE, "B1")
    ]

    left = ok(client.delete("/v1/batches/B1/enrolments/u1"))
    assert left["active"] is False
    assert left["completionpercentage"] == 100, "leaving keeps the progress"
    assert ok(client.get(f"/v1/enrolments/u1/{COURSE}/B1"))["active"] is False
    assert error_code(client.delete("/v1/batches/B1/enrolments/u2"), 404) == "enrolment-not-found"
    back = ok(client.put("/v1/batches/B1/enrolments/u1"), 200)
    assert (back["active"], back["created"], back["status"]) == (True, False, 2)


def test_audit_events_page_by_ledger_id(client: TestClient) -> None:
    publish_democourse(client)
    ok(client.post("/v1/batches", json={"batchid": "B1", "courseid": COURSE, "name": "Batch 1"}), 201)
    ok(client.put("/v1/batches/B1/enrolments/u1"), 201)
    post_events(client, progress_line("u1", FIRST))
    every = ok(client.get("/v1/audit-events", params={"course": COURSE}))
    first = ok(client.get("/v1/audit-events", params={"course": COURSE, "limit": 2}))
    rest = ok(client.get("/v1/audit-events", params={"course": COURSE, "after": first[-1]["id"]}))
    assert first + rest == every
    assert len(every) == 5
    assert ok(client.get("/v1/audit-events", params={"course": "other"})) == []


def test_enrolment_closes_after_its_last_day(client: TestClient) -> None:
    publish_democourse(client)
    yesterday = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    ok(
        client.post(
            "/v1/batches",
            json={"batchid": "B2", "courseid": COURSE, "name": "closed", "enrollmentenddate": yesterday},
        ),
        201,
    )
    assert error_code(client.put("/v1/batches/B2/enrolments/u1"), 409) == "enrolment-closed"


def test_a_batch_body_is_validated(client: TestClient) -> None:
    base = {"batchid": "B1", "courseid": COURSE, "name": "Batch 1"}
    assert (
        error_code(client.post("/v1/batches", json={**base, "enrollmenttype": "closed"}), 422)
        == "invalid-request"
    )
    assert (
        error_code(client.post("/v1/batches", json={**base, "startdate": "2024-13-01"}), 422)
        == "invalid-request"
    )
    assert error_code(client.post("/v1/batches", json={**base, "mentor": ["typo"]}), 422) == "invalid-request"
    assert (
        error_code(client.post("/v1/batches", json={"courseid": COURSE, "name": "x"}), 422)
        == "invalid-request"
    )


# --- the command line ----------------------------------------------------------------------------------


@pytest.fixture
def cli(settings: Settings) -> Cli:
    return Cli(settings)


@pytest.mark.slow
def test_progress_through_the_command_line(cli: Cli, app: App) -> None:
    assert cli("content", "publish", str(EXAMPLES / "democourse.json")).returncode == 0
    batch = run_json(
        cli,
        *("batches", "create", "--course", COURSE, "--batch", "B1", "--name", "Batch 1"),
        *("--start", "2024-01-01", "--end", "2024-12-31", "--enrolment-type", "invite-only"),
        *("--mentor", "m1", "--mentor", "m2", "--created-for", "org1"),
    )
    assert (batch["batchid"], batch["courseid"], batch["name"]) == ("B1", COURSE, "Batch 1")
    assert (batch["startdate"], batch["enddate"], batch["enrollmentenddate"]) == (
        "2024-01-01",
        "2024-12-31",
        None,
    )
    assert (batch["enrollmenttype"], batch["mentors"], batch["createdfor"]) == (
        "invite-only",
        ["m1", "m2"],
        ["org1"],
    )
    assert run_json(cli, "batches", "get", "B1") == batch
    assert run_lines(cli, "batches", "list", "--course", COURSE) == [batch]

    again = fails(cli, "batches", "create", "--course", COURSE, "--batch", "B1", "--name", "again")
    assert again == "courseinfra: batch-exists: batch B1 exists\n"
    unknown = fails(cli, "batches", "create", "--course", "nosuchcourse", "--batch", "B9", "--name", "x")
    assert unknown.startswith("courseinfra: course-not-found: ")
    usage = fails(
        cli,
        "batches",
        "create",
        "--course",
        COURSE,
        "--batch",
        "B2",
        "--name",
        "x",
        "--end",
        "soon",
        exit_code=2,
    )
    assert "Invalid value for '--end'" in usage, "a usage error, not a traceback"

    enrolled = run_json(cli, "enrol", "u1", "B1", "--added-by", "admin", "--mode", "verified")
    assert (enrolled["created"], enrolled["active"], enrolled["addedby"], enrolled["mode"]) == (
        True,
        True,
        "admin",
        "verified",
    )

    line = progress_line("u1", FIRST)
    assert run_json(cli, "ingest", "-", "--json", stdin=line + "\n")["rejected"] == []
    enrolment = run_json(cli, "enrolments", "get", "u1", COURSE, "B1")
    assert set(enrolment) == {
        "userid",
        "courseid",
        "batchid",
        "active",
        "addedby",
        "enrolleddate",
        "datetime",
        "contentstatus",
        "lastreadcontentid",
        "lastreadcontentstatus",
        "progress",
        "completionpercentage",
        "status",
        "completedon",
        "certificates",
        "mode",
    }
    assert (enrolment["completionpercentage"], enrolment["progress"], enrolment["status"]) == (33, 1, 1)
    assert enrolment["contentstatus"] == {"resource1": 2, "resource2": 1}
    with api_client(app) as client:
        assert ok(client.get(f"/v1/enrolments/u1/{COURSE}/B1")) == enrolment, "one serializer for both"
    assert run_json(cli, "activity", "get", "u1", COURSE, "B1") == {
        "course": {"completedCount": 1, "leafNodesCount": 3, "progress": 33},
        "units": {"courseunit1": {"completedCount": 1, "leafNodesCount": 2, "progress": 50}},
    }
    assert audit_triples(run_lines(cli, "audit", "list", "--user", "u1")) == AUDIT_AFTER_FIRST

    assert run_json(cli, "ingest", "-", "--json", stdin=line + "\n")["rejected"] == []
    assert audit_triples(run_lines(cli, "audit", "list", "--user", "u1")) == AUDIT_AFTER_FIRST

    assert run_json(cli, "ingest", "-", "--json", stdin=progress_line("u1", REST) + "\n")["rejected"] == []
    enrolment = run_json(cli, "enrolments", "get", "u1", COURSE, "B1")
    assert (enrolment["completionpercentage"], enrolment["progress"], enrolment["status"]) == (100, 3, 2)
    assert enrolment["completedon"] is not None
    audits = run_lines(cli, "audit", "list", "--user", "u1", "--course", COURSE)
    assert audit_triples(audits) == AUDIT_AFTER_ALL
    assert all(a["eid"] == "AUDIT" and a["actor"] == {"id": "u1", "type": "User"} for a in audits)
    page = cli("audit", "list", "--user", "u1", "--limit", "2")
    assert len(page.stdout.splitlines()) == 2
    assert "--after" in page.stderr

    stranger = cli("ingest", "-", "--json", stdin=progress_line("u2", FIRST) + "\n")
    assert stranger.returncode == 1
    assert "stdin:1: enrolment-not-found" in stranger.stderr
    assert [r["code"] for r in json.loads(stranger.stdout)["rejected"]] == ["enrolment-not-found"]
    kept = run_lines(cli, "failed", "list", "--json")
    assert [(k["source"], k["code"]) for k in kept] == [("stdin:1", "enrolment-not-found")]

    assert [e["userid"] for e in run_lines(cli, "enrolments", "list", "--batch", "B1")] == ["u1"]
    assert [e["batchid"] for e in run_lines(cli, "enrolments", "list", "--user", "u1")] == ["B1"]
    assert (
        fails(cli, "enrolments", "list", exit_code=2)
        == "courseinfra: give exactly one of --user and --batch\n"
    )

    left = run_json(cli, "unenrol", "u1", "B1")
    assert (left["active"], left["completionpercentage"]) == (False, 100)
    assert run_json(cli, "enrolments", "get", "u1", COURSE, "B1")["active"] is False
