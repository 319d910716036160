"""The user directory through the ``courseinfra users`` commands and the REST API, on every backend."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from courseinfra.bootstrap import App
from courseinfra.domain.events import UserLoggedIn, UserProfileChanged
from courseinfra.settings import Settings
from tests.support.cli import COURSEINFRA, Cli, fails, run_json, run_lines
from tests.support.http import api_client, error_code, ok
from tests.support.servers import EXAMPLES

BAD_CSV = (
    "user_id,username,email,is_staff\n"
    "u1,ada,ada@example.org,yes\n"
    ",x,x@example.org,no\n"
    "u3,cid,not-an-email,no\n"
    "u4,ada,,maybe\n"
)


# --- the command line ----------------------------------------------------------------------------------


@pytest.fixture
def cli(settings: Settings) -> Cli:
    return Cli(settings)


@pytest.mark.slow
def test_import_the_example_then_read_log_in_and_edit(cli: Cli, tmp_path: Path) -> None:
    report = run_json(cli, "users", "import", str(EXAMPLES / "users.csv"))
    assert report == {"inserted": 5, "updated": 0, "unchanged": 0, "errors": []}
    assert run_json(cli, "users", "import", str(EXAMPLES / "users.csv"))["unchanged"] == 5

    progress_users = {
        json.loads(line)["edata"]["userId"]
        for line in (EXAMPLES / "progress-events.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("{") and '"userId"' in line
    }
    listed = run_lines(cli, "users", "list")
    assert progress_users <= {u["user_id"] for u in listed}, "the example has the example events' users"

    learner = run_json(cli, "users", "get", "learner-1")
    assert (learner["username"], learner["organisation"], learner["is_staff"]) == ("asha", "org-north", False)
    assert learner["profile"] == {"district": "North", "school": "Hill Road School"}
    assert learner["last_login_at"] == "2026-11-20T09:15:00+00:00"
    chen = run_json(cli, "users", "get", "not-enrolled")
    assert chen["last_login_at"] == "2026-11-18T11:10:00+00:00", "stored in UTC"
    assert fails(cli, "users", "get", "nobody") == "courseinfra: user-not-found: user nobody does not exist\n"

    north = run_lines(cli, "users", "list", "--organisation", "org-north")
    assert [u["user_id"] for u in north] == ["learner-1", "learner-2", "mentor-1"]
    page = run_lines(
        cli, "users", "list", "--organisation", "org-north", "--after", "learner-1", "--limit", "1"
    )
    assert [u["user_id"] for u in page] == ["learner-2"]

    login = run_json(cli, "users", "login", "learner-1", "--at", "2026-11-22T10:00:00+01:00")
    assert (login["recorded"], login["last_login_at"]) == (True, "2026-11-22T09:00:00+00:00")
    late = run_json(cli, "users", "login", "learner-1", "--at", "2026-11-21T00:00:00Z")
    assert (late["recorded"], late["last_login_at"]) == (False, "2026-11-22T09:00:00+00:00")
    assert "no time zone" in fails(cli, "users", "login", "learner-1", "--at", "2026-11-22", exit_code=2)

    edited = run_json(
        cli, "users", "set-profile", "learner-1", "district=East", "team=a=b", "--unset", "school"
    )
    assert edited["profile"] == {"district": "East", "team": "a=b"}
    assert edited["updated_at"] > learner["updated_at"]
    assert fails(cli, "users", "set-profile", "learner-1", "oops", exit_code=2).startswith("courseinfra: ")
    assert fails(cli, "users", "set-profile", "nobody", "a=b").startswith("courseinfra: user-not-found")

    exported = tmp_path / "export.jsonl"
    exported.write_text(cli("users", "list").stdout, encoding="utf-8")
    assert run_json(cli, "users", "import", str(exported)) == {
        "inserted": 0,
        "updated": 0,
        "unchanged": 5,
        "errors": [],
    }, "what list prints imports again, unchanged"


def test_a_bad_file_prints_every_bad_row_and_imports_nothing(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    stderr = fails(cli, "users", "import", str(path))
    assert stderr.splitlines() == [
        "line 3: user_id is missing or empty",
        'line 4: email "not-an-email" is not an email address',
        "line 5: username ada is repeated (first on line 2)",
        'line 5: is_staff "maybe" is not a boolean (true/false, yes/no, 1/0)',
        f"courseinfra: 4 bad row(s) in {path}: nothing was imported",
    ]
    assert run_lines(cli, "users", "list") == []

    stdin = cli("users", "import", "-", "--format", "jsonl", stdin='{"user_id": "u1"}\n{"user_id": 2}\n')
    assert stdin.returncode == 1
    assert "line 2: user_id 2 is not text" in stdin.stderr
    unknown = fails(cli, "users", "import", str(tmp_path / "users.txt"), exit_code=2)
    assert "give --format" in unknown
    missing = fails(cli, "users", "import", str(tmp_path / "none.csv"))
    assert missing.startswith("courseinfra: cannot read")


# --- the API -------------------------------------------------------------------------------------------


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with api_client(app) as client:
        yield client


def test_users_through_the_api(client: TestClient) -> None:
    csv_text = (EXAMPLES / "users.csv").read_text(encoding="utf-8")
    report = ok(client.post("/v1/users/import", params={"format": "csv"}, content=csv_text))
    assert report == {"inserted": 5, "updated": 0, "unchanged": 0, "errors": []}
    as_json = [{"user_id": "learner-2", "username": "ben", "organisation": "org-south", "district": "South"}]
    report = ok(client.post("/v1/users/import", json=as_json))
    assert (report["inserted"], report["updated"]) == (0, 1)

    user = ok(client.get("/v1/users/learner-2"))
    assert (user["organisation"], user["profile"], user["email"]) == (
        "org-south",
        {"district": "South", "school": "River School"},
        "ben@example.org",
    ), "the fields the record leaves out are kept"
    assert error_code(client.get("/v1/users/nobody"), 404) == "user-not-found"
    listed = ok(client.get("/v1/users", params={"organisation": "org-north"}))
    assert [u["user_id"] for u in listed] == ["learner-1", "mentor-1"]
    assert [u["user_id"] for u in ok(client.get("/v1/users", params={"after": "learner-2", "limit": 2}))] == [
        "mentor-1",
        "not-enrolled",
    ]

    login = ok(client.post("/v1/users/learner-2/logins", json={"at": "2026-11-23T08:00:00Z"}))
    assert (login["recorded"], login["last_login_at"]) == (True, "2026-11-23T08:00:00+00:00")
    assert (
        ok(client.post("/v1/users/learner-2/logins", json={"at": "2026-11-01T08:00:00Z"}))["recorded"]
        is False
    )
    assert ok(client.post("/v1/users/learner-2/logins"))["recorded"] is True, "now, by default"
    assert error_code(client.post("/v1/users/nobody/logins"), 404) == "user-not-found"
    naive = client.post("/v1/users/learner-2/logins", json={"at": "2026-11-23T08:00:00"})
    assert error_code(naive, 422) == "invalid-request"

    patched = ok(client.patch("/v1/users/learner-2/profile", json={"district": None, "school": "Oak"}))
    assert patched["profile"] == {"school": "Oak"}
    assert ok(client.get("/v1/users/learner-2")) == patched
    assert error_code(client.patch("/v1/users/nobody/profile", json={"a": "b"}), 404) == "user-not-found"
    assert error_code(client.patch("/v1/users/learner-2/profile", json={"a": 1}), 422) == "invalid-request"


def test_a_bad_import_answers_422_with_every_bad_row(client: TestClient) -> None:
    response = client.post("/v1/users/import", params={"format": "csv"}, content=BAD_CSV)
    assert error_code(response, 422) == "invalid-users"
    assert [(d["line"], d["code"]) for d in response.json()["error"]["details"]] == [
        (3, "missing-user-id"),
        (4, "invalid-email"),
        (5, "duplicate-username"),
        (5, "invalid-boolean"),
    ]
    assert ok(client.get("/v1/users")) == []

    array = client.post("/v1/users/import", json=[{"user_id": "u1"}, {"user_id": "u1"}, 7])
    assert [(d["line"], d["code"]) for d in array.json()["error"]["details"]] == [
        (2, "duplicate-user-id"),
        (3, "invalid-record"),
    ]
    lines = client.post("/v1/users/import", params={"format": "jsonl"}, content='{"user_id":"u1"}\n{bad\n')
    assert [(d["line"], d["code"]) for d in lines.json()["error"]["details"]] == [(2, "invalid-json")]
    by_type = client.post("/v1/users/import", content=BAD_CSV, headers={"content-type": "text/csv"})
    assert error_code(by_type, 422) == "invalid-users", "text/csv is read as CSV without ?format"
    no_format = client.post("/v1/users/import", content=BAD_CSV, headers={"content-type": "text/plain"})
    assert error_code(no_format, 422) == "invalid-body"
    assert error_code(client.post("/v1/users/import", params={"format": "xml"}, content="x"), 422) == (
        "invalid-request"
    )


def test_logins_and_profile_changes_reach_the_bus(app: App, client: TestClient) -> None:
    seen: list[tuple[str, str]] = []
    app.bus.subscribe(UserLoggedIn.event_type, lambda m: seen.append((m.event_type, m.key)))
    app.bus.subscribe(
        UserProfileChanged.event_type, lambda m: seen.append((m.event_type, m.payload["user_id"]))
    )
    ok(client.post("/v1/users/import", json=[{"user_id": "u1", "profile": {"district": "North"}}]))
    ok(client.post("/v1/users/u1/logins", json={"at": "2026-11-23T08:00:00Z"}))
    ok(client.patch("/v1/users/u1/profile", json={"district": "South"}))
    assert seen == [
        ("courseinfra.user.profile.changed.v1", "u1"),
        ("courseinfra.user.login.recorded.v1", "u1"),
        ("courseinfra.user.profile.changed.v1", "u1"),
    ]


# --- an import changes only what it gives --------------------------------------------------------------

FULL = "user_id,username,email,name,organisation,is_staff,district,school\nu1,ada,ada@example.org,Ada,org1,yes,north,s1\n"


def test_an_import_of_some_columns_keeps_the_others_and_replace_clears_them(client: TestClient) -> None:
    csv_body = {"content-type": "text/csv"}
    assert ok(client.post("/v1/users/import", content=FULL, headers=csv_body))["inserted"] == 1
    partial = "user_id,email,district\nu1,ada@new.example.org,south\n"
    assert ok(client.post("/v1/users/import", content=partial, headers=csv_body))["updated"] == 1
    merged = ok(client.get("/v1/users/u1"))
    assert (
        merged["username"],
        merged["email"],
        merged["name"],
        merged["organisation"],
        merged["is_staff"],
    ) == (
        "ada",
        "ada@new.example.org",
        "Ada",
        "org1",
        True,
    )
    assert merged["profile"] == {"district": "south", "school": "s1"}, "profile fields are set, none removed"
    replaced = client.post("/v1/users/import?replace=true", content=partial, headers=csv_body)
    assert ok(replaced)["updated"] == 1
    whole = ok(client.get("/v1/users/u1"))
    assert (whole["username"], whole["name"], whole["organisation"], whole["is_staff"]) == (
        None,
        None,
        None,
        False,
    )
    assert whole["profile"] == {"district": "south"}


def test_the_cli_import_merges_and_replaces_too(cli: Cli, tmp_path: Path) -> None:
    full = tmp_path / "full.csv"
    full.write_text(FULL, encoding="utf-8")
    partial = tmp_path / "partial.csv"
    partial.write_text("user_id,name\nu1,Ada Lovelace\n", encoding="utf-8")
    run_json(cli, "users", "import", str(full))
    run_json(cli, "users", "import", str(partial))
    merged = run_json(cli, "users", "get", "u1")
    assert (merged["name"], merged["email"], merged["profile"]) == (
        "Ada Lovelace",
        "ada@example.org",
        {"district": "north", "school": "s1"},
    )
    run_json(cli, "users", "import", str(partial), "--replace")
    replaced = run_json(cli, "users", "get", "u1")
    assert (replaced["name"], replaced["email"], replaced["profile"]) == ("Ada Lovelace", None, {})


@pytest.mark.slow
def test_two_imports_of_other_columns_at_once_lose_neither(cli: Cli, tmp_path: Path) -> None:
    """Two processes merge other columns into the same users at once: each read-and-merge locks the
    users it reads, so that neither writes back a value the other had just changed."""
    ids = [f"u{n:04d}" for n in range(2000)]
    base = tmp_path / "base.csv"
    base.write_text(
        "user_id,name,email\n" + "".join(f"{u},old,{u}@old.example.org\n" for u in ids), encoding="utf-8"
    )
    run_json(cli, "users", "import", str(base))
    names = tmp_path / "names.csv"
    names.write_text("user_id,name\n" + "".join(f"{u},new\n" for u in ids), encoding="utf-8")
    emails = tmp_path / "emails.csv"
    emails.write_text(
        "user_id,email\n" + "".join(f"{u},{u}@new.example.org\n" for u in ids), encoding="utf-8"
    )
    for _ in range(2):
        writers = [
            subprocess.Popen(
                [*COURSEINFRA, "users", "import", str(path)],
                env=cli.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path in (names, emails)
        ]
        for writer in writers:
            _, err = writer.communicate(timeout=300)
            assert writer.returncode == 0, err
        found = run_lines(cli, "users", "list", "--limit", "1000") + run_lines(
            cli, "users", "list", "--after", "u0999", "--limit", "1000"
        )
        assert len(found) == 2000
        lost = [
            u["user_id"]
            for u in found
            if (u["name"], u["email"]) != ("new", f"{u['user_id']}@new.example.org")
        ]
        assert lost == []
        run_json(cli, "users", "import", str(base), "--replace")


@pytest.mark.slow
def test_two_imports_claiming_the_same_new_usernames_at_once_never_fail_on_the_index(
    cli: Cli, tmp_path: Path
) -> None:
    """Two processes import different new users claiming the same usernames at once (schemathesis
    found a 500 on PostgreSQL: both checked the usernames free, one then failed on the unique index).
    Each import is all or nothing: the first wins them, the second reports them taken, and no process
    ends on a database error."""
    for attempt in range(3):
        files = []
        for side in ("a", "b"):
            rows = "".join(f"{side}{attempt}u{n:05d},shared{attempt}-{n:05d}\n" for n in range(3000))
            path = tmp_path / f"{side}-{attempt}.csv"
            path.write_text("user_id,username\n" + rows, encoding="utf-8")
            files.append(path)
        writers = [
            subprocess.Popen(
                [*COURSEINFRA, "users", "import", str(path)],
                env=cli.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path in files
        ]
        outcomes = [(writer.communicate(timeout=300)[1], writer.returncode) for writer in writers]
        assert sorted(code for _, code in outcomes) == [0, 1], outcomes
        refused = next(err for err, code in outcomes if code == 1)
        assert "is held by user" in refused
        assert "Traceback" not in refused
        assert "IntegrityError" not in refused
