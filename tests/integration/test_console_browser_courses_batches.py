"""The courses and batches pages in a real browser (headless Debian chromium through Playwright) against
a real ``courseinfra serve``, on every backend: a course's relation cache as a tree opened by keyboard,
a batch's charts and its report run's CSV, and course staff of another course refused. Every page
visited is kept as a screenshot (``tests/support/console.py``: ``ARTIFACTS``)."""

from __future__ import annotations

import pytest

from tests.support.console import ConsoleBrowser, Served
from tests.support.servers import EXAMPLES


def seed(console_server: Served) -> None:
    """democourse published, batch demobatch with learner-1 and learner-2 and their progress, a report
    run of today: the learner journey of ``examples/learner-journey.sh``."""
    cli = console_server.cli
    for command in [
        ("content", "publish", str(EXAMPLES / "democourse.json")),
        ("batches", "create", "--course", "democourse", "--batch", "demobatch", "--name", "Demo batch"),
        ("enrol", "learner-1", "demobatch"),
        ("enrol", "learner-2", "demobatch"),
    ]:
        done = cli(*command)
        assert done.returncode == 0, done.stderr
    cli("ingest", str(EXAMPLES / "progress-events.jsonl"))  # some lines fail on purpose: exit 1
    generated = cli("reports", "generate")
    assert generated.returncode == 0, generated.stderr


@pytest.mark.slow
def test_a_courses_cache_tree_and_a_batchs_charts_and_report(
    browser: ConsoleBrowser, console_server: Served
) -> None:
    seed(console_server)
    browser.log_in(console_server.token("operator", "--pii"))
    browser.click("nav >> text=Courses")
    browser.click("#courses a >> text=democourse")
    unit = browser.page.locator('details[data-collection="courseunit1"]')
    assert unit.get_attribute("open") is None
    unit.locator("summary").first.focus()
    browser.page.keyboard.press("Enter")  # a <summary> opens by keyboard
    assert unit.get_attribute("open") is not None
    assert browser.page.locator(
        'details[data-collection="courseunit1"] li[data-leaf="resource1"]'
    ).is_visible()
    browser.shoot()

    browser.click("nav >> text=Batches")
    browser.click("#batches a >> text=demobatch")
    assert browser.text("#enrolled") == "2"
    assert browser.page.locator("#progress-chart svg[role=img]").count() == 1
    assert "Progress of the 2 active enrolment(s)" in browser.text("#progress-chart figcaption")
    csv_link = browser.page.locator("a.csv").first
    href = csv_link.get_attribute("href")
    assert href
    answer = browser.page.request.get(console_server.base + href)
    assert answer.status == 200
    assert answer.text().startswith("User ID,")
    assert browser.page.locator("[id^=run-][id$=-chart] svg").count() == 1


@pytest.mark.slow
def test_course_staff_of_another_course_see_neither_courses_nor_this_batch(
    browser: ConsoleBrowser, console_server: Served
) -> None:
    seed(console_server)
    browser.log_in(console_server.token("course_staff", "--scope", "course:othercourse"))
    assert browser.page.locator("nav a", has_text="Courses").count() == 0
    browser.click("nav >> text=Batches")
    assert browser.page.locator("#batches a", has_text="demobatch").count() == 0
    browser.open("/console/batches/demobatch")
    assert browser.text("h1") == "Not allowed"
    browser.open("/console/courses/democourse")
    assert browser.text("h1") == "Not allowed"
