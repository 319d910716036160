"""The console's legacy links page in process, on every backend (local legacy groups): every link with its
authority, the difference of its two sides, the open drift and the sync failures (as ``courseinfra sync
status``), a dry run and a reconciliation of one link (as ``courseinfra sync reconcile --link``); a
read-only role sees no button and is refused the POST, course staff do not reach the page, and a
refused or failed reconciliation is a page with its message."""

from __future__ import annotations

import re
from typing import Any

import pytest

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.bootstrap import App
from courseinfra.domain.legacy import LegacyUnavailable, link_of
from courseinfra.services import sync
from courseinfra.services.groups import GroupDefinition, SyncFailed
from tests.support.console import console_client, csrf_in, message_of
from tests.support.legacy_links import OPENEDX_COURSE, cohort_criteria, link_course, members

LEARNERS = ("learner-1", "learner-2", "learner-3")
#: A cohort link whose user group is the authority (the default): a legacy edit is drift, pushed back.
PUSHED = {"type": "legacy_cohort", "operator": "member_of", "config": {"course_id": OPENEDX_COURSE}}


@pytest.fixture
def linked(app: App, monkeypatch: pytest.MonkeyPatch) -> App:
    """Two cohort links of one course, each with a legacy edit courseinfra did not make: ``blue``
    (authority legacy) has learner-1 only in its cohort; ``pushed`` (authority user_group) learner-3,
    recorded as drift; and one sync failure kept (adding learner-2 to ``pushed`` failed)."""
    cohorts = link_course(app, LEARNERS, groups=(("blue", cohort_criteria()), ("pushed", PUSHED)))
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    legacy.add_to_cohort(OPENEDX_COURSE, cohorts["blue"], ["learner-1"])
    legacy.add_to_cohort(OPENEDX_COURSE, cohorts["pushed"], ["learner-3"])
    app.groups.linked.record_drift("pushed", link("pushed", app), ["learner-3"], "test-edit")
    with monkeypatch.context() as patch:
        patch.setattr(LocalLegacyGroups, "add_to_cohort", unavailable)
        with pytest.raises(SyncFailed):
            app.groups.change_legacy_members("pushed", add=["learner-2"])
    return app


def unavailable(*_args: Any, **_kwargs: Any) -> Any:
    raise LegacyUnavailable("injected: the legacy system is down")


def link(group_id: str, app: App) -> Any:
    found = link_of(app.groups.get_group(group_id).group.criteria)
    assert found is not None
    return found


def row(html: str, group_id: str) -> str:
    """The text of the links table's row of ``group_id``, tags removed."""
    found = re.search(rf'<table id="links">.*?<tr data-group="{group_id}">(.*?)</tr>', html, re.S)
    assert found, html
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


def cell(html: str, group_id: str, name: str) -> str:
    found = re.search(rf'<tr data-group="{group_id}">.*?<td class="[^"]*{name}[^"]*">(.*?)</td>', html, re.S)
    assert found, html
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


def test_every_link_with_its_authority_difference_drift_and_failures(linked: App) -> None:
    client = console_client(linked, "operator", pii=False)
    assert 'href="/console/links"' in client.get("/console/").text
    page = client.get("/console/links")
    assert page.status_code == 200
    assert cell(page.text, "blue", "authority") == "legacy"
    assert cell(page.text, "pushed", "authority") == "user_group"
    assert cell(page.text, "blue", "difference") == "1: 0 only in the user group, 1 only in the legacy group"
    assert cell(page.text, "pushed", "drift") == "1"
    assert cell(page.text, "pushed", "failures") == "1"
    assert cell(page.text, "blue", "failures") == "0"
    assert re.search(
        r'<tr data-group="blue"><td>blue</td>\s*<td>\N{EN DASH}</td><td>learner-1</td>', page.text
    )
    drift = re.search(r'<table id="drift">.*?</table>', page.text, re.S)
    assert drift
    assert "learner-3" in drift.group(0)
    assert "only-in-legacy-group" in drift.group(0)
    assert "test-edit" in drift.group(0)
    failures = re.search(r'<table id="failures">.*?</table>', page.text, re.S)
    assert failures
    assert "injected: the legacy system is down" in failures.group(0)
    assert "legacy-unavailable" in failures.group(0)
    assert re.search(r'id="failure-count">1<', page.text)
    assert 'aria-label="Reconcile blue"' in page.text
    assert 'aria-label="Dry run of pushed"' in page.text
    status = sync.sync_status(linked.uow_factory)
    assert (len(status.differing), status.drift_count, len(status.failures)) == (2, 1, 1), "as sync status"


def test_a_dry_run_writes_nothing_and_a_reconciliation_applies_the_authority(linked: App) -> None:
    client = console_client(linked, "operator")
    page = client.get("/console/links")
    csrf = csrf_in(page.text)
    dry = client.post("/console/links/blue/reconcile", data={"csrf_token": csrf, "dry_run": "true"})
    assert dry.status_code == 200
    assert "Nothing was written" in dry.text
    assert "A reconciliation would pull: 1 added and 0 removed" in dry.text
    assert re.search(r'id="only-in-legacy">1: learner-1<', dry.text)
    assert members(linked, "blue") == {}, "a dry run writes nothing"

    done = client.post("/console/links/blue/reconcile", data={"csrf_token": csrf})
    assert done.status_code == 303
    assert done.headers["location"] == (
        "/console/links?reconciled=blue&action=pull&added=1&removed=0&not_fixed=0"
    )
    assert members(linked, "blue") == {"learner-1": "legacy-reconcile"}
    after = client.get(done.headers["location"])
    assert "Reconciled blue: pull, 1 added and 0 removed (the user group changed)" in after.text
    assert cell(after.text, "blue", "difference") == "none"

    pushed = client.post("/console/links/pushed/reconcile", data={"csrf_token": csrf})
    assert pushed.headers["location"].endswith("reconciled=pushed&action=push&added=0&removed=1&not_fixed=0")
    assert cohort_members(linked, "pushed") == set(), "the user group's membership was pushed"
    assert re.search(r'id="drift-count">0<', client.get("/console/links").text)


def cohort_members(app: App, group_id: str) -> set[str]:
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    legacy_id = link(group_id, app).legacy_id
    assert legacy_id is not None
    return legacy.cohort_members(OPENEDX_COURSE, legacy_id)


def test_a_reader_sees_no_button_and_is_refused_and_course_staff_do_not_reach_the_page(linked: App) -> None:
    reader = console_client(linked, "reader", pii=False)
    page = reader.get("/console/links")
    assert page.status_code == 200
    assert "learner-1" in page.text
    assert "/reconcile" not in page.text
    assert "Dry run" not in page.text
    csrf = csrf_in(page.text)  # the logout form's: a valid token of the session
    for data in [{"csrf_token": csrf}, {"csrf_token": csrf, "dry_run": "true"}]:
        refused = reader.post("/console/links/blue/reconcile", data=data)
        assert refused.status_code == 403
        assert "operate" in message_of(refused.text)
    assert members(linked, "blue") == {}
    staff = console_client(linked, "course_staff", scope=f"course:{OPENEDX_COURSE}")
    assert 'href="/console/links"' not in staff.get("/console/").text
    assert staff.get("/console/links").status_code == 403


def test_a_refused_or_failed_reconciliation_is_a_page_with_its_message(
    linked: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    linked.groups.create_group(
        "plain", GroupDefinition(name="Plain", scope="instance", include=("learner-1",))
    )
    client = console_client(linked, "operator")
    csrf = csrf_in(client.get("/console/links").text)
    for path, status, message in [
        ("/console/links/plain/reconcile", 409, "not linked to a legacy group"),
        ("/console/links/nobody/reconcile", 404, "no user group nobody"),
        ("/console/links/" + "g" * 65 + "/reconcile", 422, "group_id"),
    ]:
        answer = client.post(path, data={"csrf_token": csrf})
        assert answer.status_code == status, path
        assert message in message_of(answer.text)
        assert "Traceback" not in answer.text
    for query in ["action=bogus&reconciled=blue", "added=-1", "reconciled=" + "g" * 65]:
        answer = client.get("/console/links?" + query)
        assert answer.status_code == 422, query
        assert message_of(answer.text)
    monkeypatch.setattr(LocalLegacyGroups, "cohort_members", unavailable)
    failed = client.post("/console/links/blue/reconcile", data={"csrf_token": csrf})
    assert failed.status_code == 502
    assert "injected: the legacy system is down" in message_of(failed.text)
