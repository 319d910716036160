"""Who may do what through the API: bearer tokens, roles, personal data, and a server that will not
listen for other machines while no client could be let in. On every backend."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from courseinfra.adapters.sql.tables import api_tokens
from courseinfra.bootstrap import App
from courseinfra.domain.access import ROLE_PERMISSIONS, Permission, Role
from courseinfra.domain.users import User
from courseinfra.entrypoints.api import create_app
from courseinfra.services import access
from courseinfra.settings import Settings
from tests.support.cli import Cli, fails, run_json, run_lines
from tests.support.http import api_client, error_code, ok

#: What answers without a token: the health check (for load balancers) and the API's own description.
PUBLIC = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def bearer(app: App, role: str, *, pii: bool = False, **options: Any) -> dict[str, str]:
    _, secret = access.create_token(f"test {role}", role, app.uow_factory(), pii=pii, **options)
    return {"Authorization": f"Bearer {secret}"}


def guarded_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) the OpenAPI document lists but the public ones, path parameters filled in."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in sorted(paths.items())
        if path not in PUBLIC
        for method in sorted(operations)
    ]


@pytest.fixture
def anonymous(app: App) -> TestClient:
    return TestClient(create_app(app))


def test_every_route_but_health_and_the_openapi_document_needs_a_token(
    app: App, anonymous: TestClient
) -> None:
    routes = guarded_routes(anonymous)
    assert len(routes) > 45
    answers = {(method, path): anonymous.request(method, path) for method, path in routes}
    refused = {route: a.status_code for route, a in answers.items() if a.status_code != 401}
    assert refused == {}
    for answer in answers.values():
        assert answer.json()["error"]["code"] == "unauthenticated"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["Bearer cit_not-a-token", "Basic dXNlcjpwYXNz", "Bearer", "cit_no-scheme"],
)
def test_an_unknown_or_malformed_credential_is_401(anonymous: TestClient, authorization: str) -> None:
    answer = anonymous.get("/v1/groups", headers={"Authorization": authorization})
    assert error_code(answer, 401) == "unauthenticated"


def test_a_revoked_or_expired_token_is_refused(app: App, anonymous: TestClient) -> None:
    token, secret = access.create_token("soon gone", "reader", app.uow_factory())
    headers = {"Authorization": f"Bearer {secret}"}
    assert anonymous.get("/v1/groups", headers=headers).status_code == 200
    access.revoke_token(token.token_id, app.uow_factory())
    assert error_code(anonymous.get("/v1/groups", headers=headers), 401) == "unauthenticated"
    past = datetime.now(UTC) - timedelta(days=2)
    expired = bearer(app, "reader", expires_in_days=1, now=past)
    assert error_code(anonymous.get("/v1/groups", headers=expired), 401) == "unauthenticated"


# (role, method, path, body, expected status): one route of each kind, allowed and refused.
MATRIX = [
    ("reader", "GET", "/v1/groups", None, 200),
    ("reader", "POST", "/v1/groups", {"group_id": "g", "name": "G", "scope": "instance"}, 403),
    ("reader", "POST", "/v1/events", None, 403),
    ("reader", "GET", "/v1/failed-events", None, 403),
    ("reader", "GET", "/v1/tokens", None, 403),
    ("ingest", "POST", "/v1/events", None, 200),
    ("ingest", "GET", "/v1/groups", None, 403),
    ("ingest", "PUT", "/v1/batches/B1/enrolments/u1", None, 403),
    ("operator", "POST", "/v1/groups", {"group_id": "g", "name": "G", "scope": "instance"}, 201),
    ("operator", "GET", "/v1/failed-events", None, 200),
    ("operator", "GET", "/v1/tokens", None, 403),
    ("operator", "POST", "/v1/tokens", {"name": "mine", "role": "admin"}, 403),
    ("admin", "GET", "/v1/tokens", None, 200),
]


@pytest.mark.parametrize(("role", "method", "path", "body", "status"), MATRIX)
def test_a_role_grants_its_routes_and_no_other(
    app: App, anonymous: TestClient, role: str, method: str, path: str, body: Any, status: int
) -> None:
    headers = bearer(app, role)
    if path == "/v1/events":  # an empty batch of events
        answer = anonymous.post(path, content="", headers={**headers, "content-type": "application/x-ndjson"})
    else:
        answer = anonymous.request(method, path, headers=headers, json=body)
    assert answer.status_code == status, answer.text
    if status == 403:
        assert answer.json()["error"]["code"] == "forbidden"


def test_an_operator_holds_every_permission_but_handing_out_tokens() -> None:
    assert ROLE_PERMISSIONS[Role.OPERATOR] == frozenset(Permission) - {Permission.ADMINISTER}
    assert ROLE_PERMISSIONS[Role.INGEST] == {Permission.INGEST}


def test_personal_data_only_with_the_pii_grant(app: App, anonymous: TestClient) -> None:
    with app.uow_factory() as uow:
        uow.users.upsert_many(
            [User("u1", username="ada", email="ada@example.org", name="Ada", profile={"district": "north"})],
            datetime.now(UTC),
        )
        uow.commit()
    masked = ok(anonymous.get("/v1/users/u1", headers=bearer(app, "reader")))
    assert (masked["email"], masked["name"], masked["profile"]) == ("***", "***", {"district": "***"})
    assert (masked["user_id"], masked["username"]) == ("u1", "ada"), "ids are not personal data"
    [listed] = ok(anonymous.get("/v1/users", headers=bearer(app, "reader")))
    assert listed == masked
    shown = ok(anonymous.get("/v1/users/u1", headers=bearer(app, "reader", pii=True)))
    assert (shown["email"], shown["name"], shown["profile"]) == (
        "ada@example.org",
        "Ada",
        {"district": "north"},
    )


def test_report_files_need_the_pii_grant_unless_reports_are_masked(app: App, anonymous: TestClient) -> None:
    refused = anonymous.get("/v1/reports/runs/r1/files/x.csv", headers=bearer(app, "operator"))
    assert error_code(refused, 403) == "forbidden"
    allowed = anonymous.get("/v1/reports/runs/r1/files/x.csv", headers=bearer(app, "operator", pii=True))
    assert error_code(allowed, 404) == "report-run-not-found"


def test_metrics_need_a_token_unless_made_public(app: App, settings: Settings) -> None:
    anonymous = TestClient(create_app(app))
    assert error_code(anonymous.get("/metrics"), 401) == "unauthenticated"
    assert anonymous.get("/metrics", headers=bearer(app, "reader")).status_code == 200
    assert error_code(anonymous.get("/metrics", headers=bearer(app, "ingest")), 403) == "forbidden"
    public = App(**{**vars(app), "settings": settings.model_copy(update={"metrics_public": True})})
    assert TestClient(create_app(public)).get("/metrics").status_code == 200


def test_the_openapi_document_declares_the_bearer_scheme_and_the_401_and_403(anonymous: TestClient) -> None:
    document = anonymous.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (`courseinfra tokens create --name NAME --role ROLE`) or a JWT of "
        "the OAuth2 provider named by COURSEINFRA_JWT_ISSUER.",
    }
    groups = document["paths"]["/v1/groups"]["post"]
    assert groups["security"] == [{"token": []}]
    assert {"401", "403"} <= set(groups["responses"])
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_the_api_creates_lists_and_revokes_tokens(app: App) -> None:
    with api_client(app) as client:
        created = ok(client.post("/v1/tokens", json={"name": "feeder", "role": "ingest"}), 201)
        assert created["secret"].startswith("cit_")
        listed = ok(client.get("/v1/tokens"))
        assert created["token_id"] in {t["token_id"] for t in listed}
        assert all("secret" not in t for t in listed)
        feeder = {"Authorization": f"Bearer {created['secret']}"}
        assert client.get("/v1/groups", headers=feeder).status_code == 403
        assert client.delete(f"/v1/tokens/{created['token_id']}").status_code == 204
        assert error_code(client.get("/v1/groups", headers=feeder), 401) == "unauthenticated"
        assert error_code(client.delete("/v1/tokens/tok_nope"), 404) == "token-not-found"
        assert error_code(client.post("/v1/tokens", json={"name": "", "role": "reader"}), 422)


def test_only_the_hash_of_a_secret_is_stored(app: App) -> None:
    token, secret = access.create_token("kept", "reader", app.uow_factory())
    with app.engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(sa.select(api_tokens))]
    assert len(rows) == 1
    assert all(secret not in str(value) for value in rows[0])
    assert token.secret_hash in rows[0]


# --- the command line --------------------------------------------------------------------------------


def test_the_cli_creates_lists_and_revokes_tokens(settings: Settings, app: App) -> None:
    cli = Cli(settings)
    created = run_json(cli, "tokens", "create", "--name", "scraper", "--role", "reader", "--expires", "30")
    assert created["secret"].startswith("cit_")
    assert created["expires_at"] is not None
    [listed] = run_lines(cli, "tokens", "list")
    assert "secret" not in listed
    assert listed["token_id"] == created["token_id"]
    with TestClient(create_app(app)) as client:
        headers = {"Authorization": f"Bearer {created['secret']}"}
        assert client.get("/v1/groups", headers=headers).status_code == 200
        assert cli("tokens", "revoke", created["token_id"]).returncode == 0
        assert client.get("/v1/groups", headers=headers).status_code == 401
    assert fails(cli, "tokens", "revoke", "tok_nope").startswith("courseinfra: token-not-found")
    bad_role = cli("tokens", "create", "--name", "x", "--role", "root")
    assert bad_role.returncode == 2
    assert "Traceback" not in bad_role.stderr


def test_serve_refuses_another_machines_address_while_no_token_exists(settings: Settings) -> None:
    cli = Cli(settings)
    refused = cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("courseinfra: refusing to serve on 0.0.0.0: no API token exists")
    assert "\n" not in refused.stderr.strip(), "one clear line"


# --- hostile input ------------------------------------------------------------------------------------

HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/failed-events?after={HUGE}"),
        ("GET", f"/v1/audit-events?after={HUGE}"),
        ("GET", f"/v1/groups/g/history?after={HUGE}"),
        ("POST", f"/v1/failed-events/{HUGE}/replay"),
    ],
)
def test_an_id_beyond_what_a_store_keeps_is_422_not_a_server_error(app: App, method: str, path: str) -> None:
    with api_client(app) as client:
        answer = client.request(method, path)
    assert error_code(answer, 422) == "invalid-request"


@pytest.mark.parametrize(
    "command",
    [
        ("failed", "replay", HUGE),
        ("failed", "list", "--after", HUGE),
        ("audit", "list", "--after", HUGE),
        ("groups", "history", "g", "--after", HUGE),
    ],
)
def test_the_cli_refuses_an_id_beyond_what_a_store_keeps_as_a_usage_error(
    settings: Settings, command: tuple[str, ...]
) -> None:
    done = Cli(settings)(*command)
    assert done.returncode == 2, done.stderr
    assert "9223372036854775807" in done.stderr
    assert "Traceback" not in done.stderr
