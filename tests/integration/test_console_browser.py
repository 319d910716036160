"""The console in a real browser (headless Debian chromium through Playwright) against a real
``courseinfra serve`` on loopback, on every backend: log in with a token, see a failed event, replay
it once its cause is fixed and see the counts change; the login wall and a read-only role. Every page
visited is kept as a screenshot (see ``tests/support/console.py``: ``ARTIFACTS``)."""

from __future__ import annotations

import re

import pytest

from tests.support.cli import run_lines
from tests.support.console import ConsoleBrowser, Served
from tests.support.servers import EXAMPLES

#: A post-publish event for a course the store does not hold yet: it fails until the course is stored.
UNSTORED = (
    '{"eid":"BE_JOB_REQUEST","mid":"m1","edata":{"action":"post-publish-process","identifier":"democourse",'
    '"mimeType":"application/vnd.ekstep.content-collection"}}'
)


def count_of(browser: ConsoleBrowser, job: str, column: str) -> int:
    return int(browser.text(f'#counters tr[data-job="{job}"] td.{column}'))


def job_count(browser: ConsoleBrowser, job: str, column: str) -> int:
    """A count of the jobs page's counters table (thousands separated)."""
    return int(browser.text(f'#job-counters tr[data-job="{job}"] td.{column}').replace(",", ""))


@pytest.mark.slow
def test_log_in_see_a_failed_event_replay_it_and_see_the_counts_change(
    browser: ConsoleBrowser, console_server: Served
) -> None:
    cli = console_server.cli
    ingested = cli("ingest", "-", stdin=UNSTORED + "\nnot json\n")
    assert ingested.returncode == 1, ingested.stderr  # both lines failed and are kept
    secret = console_server.token("operator", "--pii")

    browser.log_in(secret)
    assert browser.page.url.endswith("/console/jobs")  # the landing page of a role that reads it
    assert job_count(browser, "relation-cache-updater", "open") == 1
    assert job_count(browser, "relation-cache-updater", "success") == 0
    browser.click("nav >> text=Failed events")
    assert browser.text("#open-total") == "2"
    assert count_of(browser, "relation-cache-updater", "open") == 1
    failed_before = count_of(browser, "relation-cache-updater", "failed")
    assert failed_before == 1
    row = browser.page.locator("#events tbody tr", has_text="relation-cache-updater")
    assert "democourse" in row.inner_text()  # its reason names the course it did not find
    browser.click("#events a >> nth=0")
    assert "post-publish-process" in browser.text("#raw")
    assert "democourse" in browser.text("#raw")
    assert browser.text("#state") == "open"

    # The cause is fixed (the course is stored), then the event is replayed from its page.
    stored = cli("content", "put", str(EXAMPLES / "democourse.json"))
    assert stored.returncode == 0, stored.stderr
    browser.click("#replay")
    assert "the event is resolved" in browser.text("#replay-result")
    assert browser.text("#state").startswith("resolved at ")
    assert browser.page.locator("#replay").count() == 0

    browser.click("text=All failed events")
    assert browser.text("#open-total") == "1"
    assert count_of(browser, "relation-cache-updater", "open") == 0
    assert count_of(browser, "relation-cache-updater", "success") == 1

    # Replay every open one: the line that is not JSON fails again, and stays open.
    browser.click("#replay-all")
    assert re.search(r"Replayed 1 event\(s\): 0 resolved, 1 still failing", browser.text("#replay-result"))
    assert browser.text("#open-total") == "1"

    # The jobs page shows the counters the replays changed.
    browser.click("nav >> text=Jobs")
    assert job_count(browser, "relation-cache-updater", "success") == 1
    assert job_count(browser, "relation-cache-updater", "open") == 0
    assert job_count(browser, "ingest", "open") == 1
    assert browser.page.locator("#relays tr[data-relay=outbox]").count() == 1

    browser.page.keyboard.press("Tab")  # the first stop is the skip link: the page is usable by keyboard
    assert browser.page.evaluate("document.activeElement.textContent") == "Skip to content"
    browser.click("text=Log out")
    assert "/console/login" in browser.page.url
    assert len(browser.shots) >= 7
    assert any(shot.name.endswith("-console-jobs.png") for shot in browser.shots)
    for shot in browser.shots:
        assert shot.stat().st_size > 1000, shot


@pytest.mark.slow
def test_no_page_without_login_and_a_reader_can_neither_see_nor_replay(
    browser: ConsoleBrowser, console_server: Served
) -> None:
    cli = console_server.cli
    assert cli("ingest", "-", stdin=UNSTORED + "\n").returncode == 1
    [kept] = run_lines(cli, "failed", "list", "--json")
    event = f"/console/failed-events/{kept['id']}"
    browser.open(event)
    assert "/console/login?next=" in browser.page.url
    assert browser.page.locator("#token").count() == 1

    browser.page.fill("#token", "cit_not-a-token")
    browser.click("button[type=submit]")
    assert "unknown, revoked or expired" in browser.text("[role=alert]")

    browser.page.fill("#token", console_server.token("reader"))
    browser.click("button[type=submit]")
    assert browser.page.url.endswith(event)  # where it was going
    assert browser.text("h1") == "Not allowed"
    assert browser.page.locator("#replay").count() == 0
    browser.open("/console/")
    assert browser.page.locator("a", has_text="Failed events").count() == 0
    assert browser.page.locator("button", has_text="Replay").count() == 0
    csrf = browser.page.input_value("input[name=csrf_token]")  # the logout form's: a valid token
    answer = browser.page.request.post(f"{console_server.base}{event}/replay", form={"csrf_token": csrf})
    assert answer.status == 403
    assert "does not grant operate" in answer.text()
    [still] = run_lines(cli, "failed", "list", "--json")
    assert still["attempts"] == 1  # nothing was replayed
