"""The user groups and legacy links pages in a real browser (headless Debian chromium through
Playwright) against a real ``courseinfra serve`` on loopback, on every backend: log in, open a group,
explain a learner's membership (by keyboard) and see the reason with the value read beside the value
compared, preview a change of criteria, open the legacy links, try a reconciliation and make it; a
reader sees none of the actions. Every page visited is kept as a screenshot (``tests/support/console.py``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.bootstrap import App
from courseinfra.domain.users import User
from courseinfra.services.groups import GroupDefinition
from tests.support.console import ConsoleBrowser, Served
from tests.support.legacy_links import OPENEDX_COURSE, cohort_criteria, link_course

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
NORTH = {"type": "profile_field", "operator": "equals", "config": {"field": "district", "value": "north"}}
SOUTH = {"type": "profile_field", "operator": "equals", "config": {"field": "district", "value": "south"}}


def seed(app: App) -> None:
    """Users a1-a4 by district and the group ``north``; a course whose cohort ``blue`` (authority legacy)
    has learner-1 in its legacy cohort only."""
    with app.uow_factory() as uow:
        districts = {"a1": "north", "a2": "north", "a3": "south", "a4": "south"}
        uow.users.upsert_many([User(user, profile={"district": d}) for user, d in districts.items()], AT)
        uow.commit()
    app.groups.create_group("north", GroupDefinition(name="North", scope="instance", criteria=NORTH))
    cohorts = link_course(app, ("learner-1", "learner-2"), groups=(("blue", cohort_criteria()),))
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    legacy.add_to_cohort(OPENEDX_COURSE, cohorts["blue"], ["learner-1"])


@pytest.mark.slow
def test_open_a_group_explain_a_learner_preview_criteria_and_reconcile_a_link(
    app: App, browser: ConsoleBrowser, console_server: Served
) -> None:
    seed(app)
    browser.log_in(console_server.token("operator", "--pii"))
    browser.click("nav >> text=User groups")
    assert browser.page.locator("#groups a", has_text="north").count() == 1
    browser.click("#groups a >> text=north")
    assert browser.text("#member-count") == "2"
    assert "a1" in browser.text("#members")

    # Explain a learner, by keyboard: the field has its label, Enter sends the form.
    browser.page.focus("label[for=user] + input")
    browser.page.keyboard.type("a3")
    with browser.page.expect_navigation():
        browser.page.keyboard.press("Enter")
    browser.shoot()
    assert browser.text("#member") == "no"
    assert "not-matched" in browser.text("#reason")
    assert "the criteria do not hold" in browser.text("#reason")
    criterion = browser.page.locator("#criteria-explained li[data-type=profile_field]")
    assert criterion.locator(".value").inner_text() == '"south"'  # the value read of a3
    assert criterion.locator(".compared").inner_text() == '"north"'  # beside the value compared
    assert "does not hold" in criterion.inner_text()

    # Preview other criteria: who would join and leave, nothing changed.
    browser.click("text=Back to the group")
    browser.page.fill("#criteria", json.dumps(SOUTH))
    browser.click("#preview")
    assert browser.text("#joined-ids") == "a3, a4"
    assert browser.text("#left-ids") == "a1, a2"
    browser.click("text=Back to the group")
    assert browser.text("#member-count") == "2"

    # The legacy links: the difference, a dry run, then the reconciliation.
    browser.click("nav >> text=Legacy links")
    blue = browser.page.locator('#links tr[data-group="blue"]')
    assert "legacy" in blue.locator(".authority").inner_text()
    assert blue.locator(".difference").inner_text().startswith("1:")
    browser.click('button[aria-label="Dry run of blue"]')
    assert "Nothing was written" in browser.text("#dry-run-result")
    assert browser.text("#only-in-legacy") == "1: learner-1"
    browser.click("#reconcile")
    assert "Reconciled blue: pull, 1 added" in browser.text("#reconcile-result")
    assert browser.page.locator('#links tr[data-group="blue"] .difference').inner_text() == "none"
    assert len(browser.shots) >= 8
    for shot in browser.shots:
        assert shot.stat().st_size > 1000, shot


@pytest.mark.slow
def test_a_reader_sees_the_groups_and_links_without_their_actions(
    app: App, browser: ConsoleBrowser, console_server: Served
) -> None:
    seed(app)
    browser.log_in(console_server.token("reader"))
    browser.open("/console/groups/north")
    assert browser.text("#member-count") == "2"
    assert browser.page.locator("#refresh, #preview").count() == 0
    browser.page.fill("#user", "a3")
    browser.click("#explain")
    value = browser.page.locator("#criteria-explained li[data-type=profile_field] .value").inner_text()
    assert value == '"***"', "a profile value is personal data: masked without pii"
    browser.open("/console/links")
    assert browser.page.locator('#links tr[data-group="blue"]').count() == 1
    assert browser.page.locator("button", has_text="Reconcile").count() == 0
    assert browser.page.locator("button", has_text="Dry run").count() == 0
