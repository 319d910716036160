"""Course staff reach their courses only; OAuth2 JWTs (HS256, RS256 from a JWK set inline or over HTTP)
are verified as Open edX services verify them. On every backend."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from courseinfra.adapters.jwt_tokens import PyJwtVerifier
from courseinfra.bootstrap import App, build_jwt
from courseinfra.entrypoints.api import create_app
from courseinfra.services import access
from courseinfra.settings import Settings, SettingsError, load_settings
from tests.support.builders import collection, leaf
from tests.support.cli import Cli
from tests.support.http import ANY_VERSION, api_client, error_code, ok

ISSUER = "https://lms.example.org/oauth2"
AUDIENCE = "courseinfra"
SHARED_KEY = "a shared key of at least thirty-two bytes, for HS256"


def headers_of(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def admin(app: App) -> Iterator[TestClient]:
    """Two organisations' courses, a batch and a course group each, made by an admin."""
    with api_client(app) as client:
        for course, organisation in (("c-north", "north-org"), ("c-south", "south-org")):
            hierarchy = collection(
                course, collection(f"{course}-u", leaf(f"{course}-pdf")), channel=organisation
            )
            hierarchy["contentType"] = "Course"
            ok(client.put(f"/v1/content/{course}/hierarchy", json=hierarchy))
            ok(client.post(f"/v1/content/{course}/publish"))
            batch = {"batchid": f"{course}-b", "courseid": course, "name": course}
            ok(client.post("/v1/batches", json=batch), 201)
            group = {"group_id": f"{course}-g", "name": course, "scope": f"course:{course}"}
            ok(client.post("/v1/groups", json=group), 201)
        ok(client.post("/v1/groups", json={"group_id": "all", "name": "All", "scope": "instance"}), 201)
        yield client


def staff(app: App, scope: str) -> dict[str, str]:
    _, secret = access.create_token("staff", "course_staff", app.uow_factory(), scope=scope)
    return headers_of(secret)


def test_course_staff_reach_their_course_and_nothing_else(app: App, admin: TestClient) -> None:
    north = staff(app, "course:c-north")
    assert [b["batchid"] for b in ok(admin.get("/v1/batches", headers=north))] == ["c-north-b"]
    ok(admin.get("/v1/batches/c-north-b", headers=north))
    assert error_code(admin.get("/v1/batches/c-south-b", headers=north), 403) == "forbidden"
    enrolled = admin.put("/v1/batches/c-north-b/enrolments/learner-1", headers=north)
    assert enrolled.status_code == 201, enrolled.text
    assert error_code(admin.put("/v1/batches/c-south-b/enrolments/learner-1", headers=north), 403)
    ok(admin.get("/v1/enrolments/learner-1/c-north/c-north-b", headers=north))
    foreign = {"batchid": "x", "courseid": "c-south", "name": "x"}
    assert error_code(admin.post("/v1/batches", json=foreign, headers=north), 403) == "forbidden"
    assert [g["group_id"] for g in ok(admin.get("/v1/groups", headers=north))] == ["c-north-g"]
    assert error_code(admin.get("/v1/groups/c-south-g", headers=north), 403) == "forbidden"
    assert error_code(admin.get("/v1/groups/all", headers=north), 403) == "forbidden"
    moved = admin.patch("/v1/groups/c-north-g", json={"scope": "instance"}, headers={**north, **ANY_VERSION})
    assert error_code(moved, 403) == "forbidden"
    assert error_code(admin.post("/v1/groups/refresh", headers=north), 403) == "forbidden"
    # Beyond batches, enrolments, groups and reports: nothing, reads included.
    for path in ("/v1/users", "/v1/content/c-north/hierarchy", "/v1/counters", "/v1/failed-events"):
        assert error_code(admin.get(path, headers=north), 403) == "forbidden", path
    assert error_code(admin.post("/v1/reports/runs", json={}, headers=north), 403) == "forbidden"


def test_an_organisation_scope_reaches_the_courses_of_that_channel(app: App, admin: TestClient) -> None:
    south = staff(app, "organisation:south-org")
    assert [b["batchid"] for b in ok(admin.get("/v1/batches", headers=south))] == ["c-south-b"]
    assert error_code(admin.get("/v1/batches/c-north-b", headers=south), 403) == "forbidden"
    group = {"group_id": "org-g", "name": "Org", "scope": "organisation:south-org"}
    ok(admin.post("/v1/groups", json=group, headers=south), 201)
    other = {"group_id": "org-n", "name": "Org", "scope": "organisation:north-org"}
    assert error_code(admin.post("/v1/groups", json=other, headers=south), 403) == "forbidden"
    assert sorted(g["group_id"] for g in ok(admin.get("/v1/groups", headers=south))) == ["c-south-g", "org-g"]


def test_course_staff_see_only_their_batches_in_reports(app: App, admin: TestClient) -> None:
    north = staff(app, "course:c-north")
    selection = ok(admin.get("/v1/reports/batches", headers=north))
    seen = {b["batch_id"] for b in selection["selected"]} | {b["batch_id"] for b in selection["skipped"]}
    assert seen == {"c-north-b"}


@pytest.mark.parametrize(
    ("role", "scope", "message"),
    [
        ("course_staff", None, "needs a scope"),
        ("reader", "course:c1", "course_staff tokens only"),
        ("course_staff", "planet:mars", "expected course:"),
    ],
)
def test_a_scope_belongs_to_course_staff_and_they_need_one(
    app: App, role: str, scope: str | None, message: str
) -> None:
    with api_client(app) as client:
        body = {"name": "s", "role": role, "scope": scope}
        refused = client.post("/v1/tokens", json=body)
        assert error_code(refused, 422) == "invalid-token-request"
        assert message in refused.json()["error"]["message"]


def test_the_cli_creates_a_scoped_token(settings: Settings, app: App, admin: TestClient) -> None:
    cli = Cli(settings)
    made = cli("tokens", "create", "--name", "tutor", "--role", "course_staff", "--scope", "course:c-south")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["scope"] == "course:c-south"
    assert ok(admin.get("/v1/batches", headers=headers_of(created["secret"])))[0]["batchid"] == "c-south-b"


# --- JWTs ---------------------------------------------------------------------------------------------


def claims(**extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now + timedelta(minutes=5),
        "iat": now,
        "preferred_username": "staff-user",
        "scopes": ["read", "courseinfra:operator"],
        **extra,
    }


def with_jwt(app: App, **settings: Any) -> TestClient:
    given = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, **settings}
    configured = Settings.model_validate({**app.settings.model_dump(), **given})
    return TestClient(create_app(App(**{**vars(app), "settings": configured, "jwt": build_jwt(configured)})))


def test_an_hs256_jwt_is_checked_for_signature_issuer_audience_and_expiry(app: App) -> None:
    client = with_jwt(app, jwt_secret=SHARED_KEY)

    def answer(token_claims: dict[str, Any], key: str = SHARED_KEY) -> Any:
        return client.get("/v1/batches", headers=headers_of(jwt.encode(token_claims, key, algorithm="HS256")))

    assert answer(claims()).status_code == 200
    assert (
        error_code(answer(claims(), key="another key of thirty-two bytes or more!"), 401) == "unauthenticated"
    )
    assert error_code(answer(claims(iss="https://elsewhere")), 401) == "unauthenticated"
    assert error_code(answer(claims(aud="someone-else")), 401) == "unauthenticated"
    expired = claims(exp=datetime.now(UTC) - timedelta(minutes=5))
    assert "expired" in answer(expired).json()["error"]["message"]
    no_expiry = claims()
    del no_expiry["exp"]
    assert error_code(answer(no_expiry), 401) == "unauthenticated"
    assert error_code(answer(claims(scopes=["read", "email"])), 403) == "forbidden"
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert error_code(client.get("/v1/batches", headers=headers_of(unsigned)), 401) == "unauthenticated"
    # Courseinfra's own tokens still work beside JWTs.
    _, secret = access.create_token("own", "reader", app.uow_factory())
    assert client.get("/v1/batches", headers=headers_of(secret)).status_code == 200


def test_open_edx_claims_map_to_roles_personal_data_and_scopes(app: App, admin: TestClient) -> None:
    ok(admin.post("/v1/users/import?format=csv", content=b"user_id,email\nu1,u1@example.org\n"))
    client = with_jwt(app, jwt_secret=SHARED_KEY)

    def get(path: str, **extra: Any) -> Any:
        return client.get(
            path, headers=headers_of(jwt.encode(claims(**extra), SHARED_KEY, algorithm="HS256"))
        )

    assert ok(get("/v1/users/u1", administrator=True))["email"] == "u1@example.org"
    assert ok(get("/v1/users/u1", scopes=["courseinfra:reader"]))["email"] == "***"
    assert (
        ok(get("/v1/users/u1", scopes=["courseinfra:reader", "courseinfra:pii"]))["email"] == "u1@example.org"
    )
    assert error_code(get("/v1/tokens", scopes=["courseinfra:operator"]), 403) == "forbidden"
    scoped = {"scopes": ["courseinfra:course_staff"], "filters": ["content_org:north-org"]}
    assert [b["batchid"] for b in ok(get("/v1/batches", **scoped))] == ["c-north-b"]
    unscoped_staff = get("/v1/batches", scopes=["courseinfra:course_staff"])
    assert "filters" in unscoped_staff.json()["error"]["message"]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_set(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]}


def test_an_rs256_jwt_is_verified_with_an_inline_jwk_set(app: App, rsa_key: rsa.RSAPrivateKey) -> None:
    client = with_jwt(app, jwt_public_keys=json.dumps(jwk_set(rsa_key, "k1")))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert client.get("/v1/batches", headers=headers_of(token)).status_code == 200
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "k1"})
    assert error_code(client.get("/v1/batches", headers=headers_of(forged)), 401) == "unauthenticated"
    # No shared key configured: an HS256 token is refused, whatever key signed it.
    hs = jwt.encode(claims(), SHARED_KEY, algorithm="HS256")
    assert error_code(client.get("/v1/batches", headers=headers_of(hs)), 401) == "unauthenticated"


def test_an_rs256_jwt_is_verified_with_a_jwk_set_fetched_over_http(
    app: App, rsa_key: rsa.RSAPrivateKey
) -> None:
    body = json.dumps(jwk_set(rsa_key, "rotating")).encode()

    class JwkSet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), JwkSet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/oauth2/jwks.json"
        client = with_jwt(app, jwt_jwks_url=url)
        token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rotating"})
        assert client.get("/v1/batches", headers=headers_of(token)).status_code == 200
        unknown_kid = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "gone"})
        assert (
            error_code(client.get("/v1/batches", headers=headers_of(unknown_kid)), 401) == "unauthenticated"
        )
    finally:
        server.shutdown()
        server.server_close()


def test_jwt_settings_that_cannot_work_are_refused_in_one_line(tmp_path: Any) -> None:
    with pytest.raises(SettingsError, match="JWT keys need COURSEINFRA_JWT_ISSUER"):
        load_settings(home=tmp_path, jwt_secret=SHARED_KEY)
    with pytest.raises(SettingsError, match="COURSEINFRA_JWT_ISSUER needs a key"):
        load_settings(home=tmp_path, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    with pytest.raises(SettingsError, match="JWK set"):
        load_settings(home=tmp_path, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_public_keys="[]")
    assert isinstance(
        PyJwtVerifier(issuer=ISSUER, audience=AUDIENCE, secret=SHARED_KEY).claims(
            jwt.encode(claims(), SHARED_KEY, algorithm="HS256")
        ),
        dict,
    )
