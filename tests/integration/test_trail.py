"""The trail of who changed what: every change through the API and the CLI names its actor, in the
change's own transaction; only administrators read it. On every backend."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
from fastapi.testclient import TestClient

from courseinfra.bootstrap import App
from courseinfra.entrypoints.api import create_app
from courseinfra.services import access
from courseinfra.settings import Settings
from tests.support.builders import collection, leaf
from tests.support.cli import COURSEINFRA, Cli, run_json, run_lines
from tests.support.http import ANY_VERSION, api_client, error_code, ok


def trail(client: TestClient, **query: str) -> list[dict[str, object]]:
    return list(ok(client.get("/v1/trail", params=query)))


def test_changes_through_the_api_name_the_token_that_made_them(app: App) -> None:
    with api_client(app) as client:
        course = collection("c1", collection("c1-u", leaf("c1-pdf")))
        course["contentType"] = "Course"
        ok(client.put("/v1/content/c1/hierarchy", json=course))
        ok(client.post("/v1/content/c1/publish"))
        ok(client.post("/v1/batches", json={"batchid": "b1", "courseid": "c1", "name": "B1"}), 201)
        ok(client.put("/v1/batches/b1/enrolments/u1"), 201)
        ok(client.post("/v1/users/import?format=csv", content=b"user_id,email\nu1,u1@example.org\n"))
        ok(client.post("/v1/groups", json={"group_id": "g1", "name": "G1", "scope": "instance"}), 201)
        ok(client.patch("/v1/groups/g1", json={"description": "new"}, headers=ANY_VERSION))
        # A refused change leaves no trail.
        again = {"group_id": "g1", "name": "other", "scope": "instance"}
        assert error_code(client.post("/v1/groups", json=again), 409) == "group-exists"
        assert client.delete("/v1/groups/g1", headers=ANY_VERSION).status_code == 204
        made = ok(client.post("/v1/tokens", json={"name": "feeder", "role": "ingest"}), 201)
        assert client.delete(f"/v1/tokens/{made['token_id']}").status_code == 204
        [own_token, *changes] = trail(client)
        # The client's own token, made in-process before any request: by the system.
        assert (own_token["action"], own_token["actor"], own_token["via"]) == (
            "token.create",
            "system",
            "worker",
        )
        me = changes[0]["actor"]
        assert [(c["action"], c["target"]) for c in changes] == [
            ("content.put", "content:c1"),
            ("content.publish", "content:c1"),
            ("batch.create", "batch:b1"),
            ("enrolment.enrol", "batch:b1"),
            ("users.import", "users"),
            ("group.create", "group:g1"),
            ("group.update", "group:g1"),
            ("group.delete", "group:g1"),
            ("token.create", f"token:{made['token_id']}"),
            ("token.revoke", f"token:{made['token_id']}"),
        ]
        assert {(c["actor"], c["role"], c["via"], c["origin"]) for c in changes} == {
            (me, "admin", "api", "testclient")
        }
        assert str(me).startswith("tok_")
        assert changes[6]["detail"] == {"fields": ["description"], "version": 2}
        assert changes[4]["detail"]["users"] == ["u1"]
        assert [c["action"] for c in trail(client, target="group:g1")] == [
            "group.create",
            "group.update",
            "group.delete",
        ]
        tokens = trail(client, action="token.", actor=str(me))
        assert [c["action"] for c in tokens] == ["token.create", "token.revoke"]
        assert trail(client, actor="somebody-else") == []


def test_only_administrators_read_the_trail(app: App) -> None:
    for role in ("operator", "reader", "ingest"):
        with api_client(app, role=role) as client:
            assert error_code(client.get("/v1/trail"), 403) == "forbidden"
    _, secret = access.create_token("tutor", "course_staff", app.uow_factory(), scope="course:c1")
    with TestClient(create_app(app), headers={"Authorization": f"Bearer {secret}"}) as client:
        assert error_code(client.get("/v1/trail"), 403) == "forbidden"


def test_the_cli_writes_its_user_and_machine_and_reads_the_trail(settings: Settings, app: App) -> None:
    cli = Cli(settings)
    run_json(cli, "groups", "create", "g2", "--name", "G2", "--scope", "instance")
    run_json(cli, "tokens", "create", "--name", "scraper", "--role", "reader")
    [group, token] = run_lines(cli, "trail", "list")
    assert group["action"] == "group.create"
    assert group["actor"].startswith("cli:")
    assert (group["via"], group["origin"]) == ("cli", socket.gethostname())
    assert token["action"] == "token.create"
    assert token["detail"]["role"] == "reader"
    assert [c["target"] for c in run_lines(cli, "trail", "list", "--target", "group:g2")] == ["group:g2"]


@pytest.mark.slow
def test_writers_in_several_processes_each_leave_one_trail_row_per_change(settings: Settings) -> None:
    cli = Cli(settings)

    def creating(worker: int) -> str:
        commands = (
            [
                *COURSEINFRA,
                "groups",
                "create",
                f"p{worker}-{n}",
                "--name",
                f"P{worker}-{n}",
                "--scope",
                "instance",
            ]
            for n in range(4)
        )
        return " && ".join(" ".join(command) for command in commands)

    workers = [
        subprocess.Popen(
            ["bash", "-c", creating(w)],
            env=cli.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(3)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    created = [json.loads(line)["group_id"] for line in cli("groups", "list").stdout.splitlines()]
    noted = [c["target"] for c in run_lines(cli, "trail", "list", "--action", "group.create")]
    assert sorted(noted) == sorted(f"group:{g}" for g in created)
    assert len(noted) == 12
