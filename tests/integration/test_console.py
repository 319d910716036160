"""The console in process, on every backend: nothing without logging in, the API's roles (a role sees
and may post only what it is granted), CSRF on every POST, errors as pages, and the failed events
page over the same use cases as ``courseinfra failed``."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from courseinfra.bootstrap import App
from courseinfra.entrypoints.api import create_app
from courseinfra.services import access, content, failed_events
from courseinfra.services.events.ingest import ingest
from tests.support.console import console_client, csrf_in, login, message_of, new_secret
from tests.support.servers import EXAMPLES

#: A post-publish event for a course the store does not hold yet: kept as failed until it is stored.
UNSTORED = (
    '{"eid":"BE_JOB_REQUEST","mid":"m1","edata":{"action":"post-publish-process","identifier":"democourse",'
    '"mimeType":"application/vnd.ekstep.content-collection"}}'
)


def keep_failures(app: App, *lines: str) -> list[int]:
    """Ingest ``lines`` (each failing); the ids of the kept events."""
    ingest(list(lines), "console-test", app.router, app.uow_factory)
    return [event.id for event in failed_events.list_failed_events(app.uow_factory, limit=1000)]


def test_no_page_without_logging_in(app: App) -> None:
    anonymous = TestClient(create_app(app), follow_redirects=False)
    for path in ["/console/", "/console/failed-events", "/console/failed-events/1"]:
        answer = anonymous.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/login?next=")
    refused = anonymous.post("/console/failed-events/replay", data={"csrf_token": "x"})
    assert refused.status_code == 401
    assert "Traceback" not in refused.text
    assert anonymous.get("/console/static/console.css").status_code == 200  # the login page's style
    assert "/console" not in str(anonymous.get("/openapi.json").json()["paths"])


def test_login_sets_an_http_only_strict_cookie_and_refuses_a_bad_token(app: App) -> None:
    client = TestClient(create_app(app), follow_redirects=False)
    refused = login(client, "cit_not-a-token")
    assert refused.status_code == 401
    assert "unknown, revoked or expired" in message_of(refused.text)
    answer = login(client, new_secret(app, "operator"))
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "courseinfra_console=cit_" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # http on loopback; set over https
    assert client.get("/console/failed-events").status_code == 200
    expired = TestClient(create_app(app), follow_redirects=False)
    form = expired.get("/console/login")
    assert form.status_code == 200
    forged = expired.post("/console/login", data={"csrf_token": "forged", "token": "x", "next": "/console/"})
    assert forged.status_code == 403


def test_a_revoked_token_is_logged_out_at_the_next_page(app: App) -> None:
    client = TestClient(create_app(app), follow_redirects=False)
    secret = new_secret(app, "operator")
    assert login(client, secret).status_code == 303
    [token] = [t for t in access.list_tokens(app.uow_factory) if t.role.value == "operator"]
    access.revoke_token(token.token_id, app.uow_factory())
    assert client.get("/console/failed-events").status_code == 303


def test_logout_needs_the_csrf_token_and_ends_the_session(app: App) -> None:
    client = console_client(app)
    home = client.get("/console/")
    assert client.post("/console/logout", data={}).status_code == 403
    out = client.post("/console/logout", data={"csrf_token": csrf_in(home.text)})
    assert out.status_code == 303
    assert 'courseinfra_console=""' in out.headers["set-cookie"]
    client.cookies.clear()
    assert client.get("/console/").status_code == 303


def test_the_navigation_and_the_pages_follow_the_role(app: App) -> None:
    [event_id] = keep_failures(app, UNSTORED)
    operator = console_client(app, "operator", pii=False)
    assert 'href="/console/failed-events"' in operator.get("/console/").text
    listed = operator.get("/console/failed-events")
    assert 'id="replay-all"' in listed.text
    assert 'id="replay"' in operator.get(f"/console/failed-events/{event_id}").text
    for role, scope in [("reader", None), ("ingest", None), ("course_staff", "course:democourse")]:
        client = console_client(app, role, scope=scope)
        home = client.get("/console/")
        assert home.status_code == 200
        assert "failed-events" not in home.text, role
        page = client.get("/console/failed-events")
        assert page.status_code == 403, role
        assert "Traceback" not in page.text
        refused = client.post(
            f"/console/failed-events/{event_id}/replay", data={"csrf_token": csrf_in(home.text)}
        )
        assert refused.status_code == 403, role
        assert (
            client.post("/console/failed-events/replay", data={"csrf_token": csrf_in(home.text)}).status_code
            == 403
        )
    [event] = failed_events.list_failed_events(app.uow_factory)
    assert event.attempts == 1
    assert event.resolved_at is None


def test_a_post_without_this_sessions_csrf_token_is_refused(app: App) -> None:
    [event_id] = keep_failures(app, UNSTORED)
    content.put_hierarchy(content_of_democourse(), app.uow_factory())
    client = console_client(app)
    other = console_client(app)
    their_token = csrf_in(other.get("/console/").text)
    for data in [{}, {"csrf_token": ""}, {"csrf_token": their_token}]:
        answer = client.post(f"/console/failed-events/{event_id}/replay", data=data)
        assert answer.status_code == 403
        assert "CSRF" in message_of(answer.text)
    [event] = failed_events.list_failed_events(app.uow_factory)
    assert event.resolved_at is None


def content_of_democourse() -> dict[str, object]:
    return dict(json.loads((EXAMPLES / "democourse.json").read_text()))


def test_replay_one_resolves_it_and_the_counts_change(app: App) -> None:
    [event_id] = keep_failures(app, UNSTORED)
    client = console_client(app)
    page = client.get("/console/failed-events")
    assert re.search(r'id="open-total">1<', page.text)
    detail = client.get(f"/console/failed-events/{event_id}")
    assert "hierarchy" in detail.text
    assert "post-publish-process" in detail.text  # the raw line
    content.put_hierarchy(content_of_democourse(), app.uow_factory())
    answer = client.post(
        f"/console/failed-events/{event_id}/replay", data={"csrf_token": csrf_in(detail.text)}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/failed-events/{event_id}?replay=resolved"
    after = client.get(answer.headers["location"])
    assert "the event is resolved" in after.text
    assert 'id="replay"' not in after.text
    assert re.search(r'id="open-total">0<', client.get("/console/failed-events").text)
    assert failed_events.open_counts(app.uow_factory) == {}


def test_the_list_filters_by_job_and_code_and_replays_what_matches(app: App) -> None:
    keep_failures(
        app, UNSTORED, "not json", '{"eid":"BE_JOB_REQUEST","edata":{"action":"post-publish-process"}}'
    )
    events = failed_events.list_failed_events(app.uow_factory)
    codes = {event.code for event in events}
    assert len(codes) == 3, codes
    client = console_client(app)
    code = next(event.code for event in events if event.payload == "not json")
    page = client.get("/console/failed-events", params={"code": code})
    assert page.text.count('href="/console/failed-events/') == 1
    for event in events:
        page = client.get("/console/failed-events", params={"job": event.job, "code": event.code})
        assert f'href="/console/failed-events/{event.id}"' in page.text
    csrf = csrf_in(page.text)
    answer = client.post("/console/failed-events/replay", data={"csrf_token": csrf, "code": code})
    assert answer.status_code == 303
    assert "replayed=1" in answer.headers["location"]
    assert "fixed=0" in answer.headers["location"]
    assert "1 still failing" in client.get(answer.headers["location"]).text
    attempts = {event.code: event.attempts for event in failed_events.list_failed_events(app.uow_factory)}
    assert attempts[code] == 2
    assert sorted(attempts.values()) == [1, 1, 2]  # the others were not replayed


def test_the_list_is_paged(app: App) -> None:
    lines = [f"bad line {n}" for n in range(53)]
    ids = keep_failures(app, *lines)
    client = console_client(app)
    first = client.get("/console/failed-events")
    assert first.text.count('href="/console/failed-events/') == 50
    after = re.search(r'href="/console/failed-events\?after=(\d+)"', first.text)
    assert after
    assert int(after.group(1)) == ids[49]
    second = client.get("/console/failed-events", params={"after": after.group(1)})
    assert second.text.count('href="/console/failed-events/') == 3
    assert "Next page" not in second.text


def test_bad_input_is_a_message_on_a_page(app: App) -> None:
    client = console_client(app)
    for path, status in [
        ("/console/failed-events?after=-1", 422),
        ("/console/failed-events?after=x", 422),
        ("/console/failed-events/0", 422),
        ("/console/failed-events/424242", 404),
        ("/console/no-such-page", 404),
        ("/console/failed-events?code=" + "x" * 300, 422),
    ]:
        answer = client.get(path)
        assert answer.status_code == status, path
        assert answer.headers["content-type"].startswith("text/html")
        assert message_of(answer.text)
        assert "Traceback" not in answer.text
    csrf = csrf_in(client.get("/console/").text)
    long = client.post("/console/failed-events/replay", data={"csrf_token": csrf, "job": "j" * 300})
    assert long.status_code == 422
    assert "at most 255" in message_of(long.text)
