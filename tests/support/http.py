"""The API as the tests call it: a client with a token, and its answers as the tests read them."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from courseinfra.bootstrap import App
from courseinfra.entrypoints.api import create_app
from courseinfra.services import access


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def error_code(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


#: The If-Match of a change made whatever the group's version (PUT, PATCH and DELETE need one).
ANY_VERSION = {"If-Match": "*"}


def api_client(app: App, *, role: str = "admin", pii: bool = True) -> TestClient:
    """A client of the API serving ``app``, with the bearer token of a new token of ``role``."""
    _, secret = access.create_token(f"test {role}", role, app.uow_factory(), pii=pii)
    return TestClient(create_app(app), headers={"Authorization": f"Bearer {secret}"})
