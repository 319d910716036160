"""The jobs page in a real browser (headless Debian chromium against ``courseinfra serve``, every
backend): a reader lands on it after logging in, sees the counters ingest processes counted, a chart of
events per second drawn from their samples and each stream's length, and changes the charts' window by
keyboard. Screenshots land in the artifacts folder (``tests/support/console.py``)."""

from __future__ import annotations

import time

import pytest

from courseinfra.settings import Settings
from tests.support.console import ConsoleBrowser, Served

#: Ingest processes sample the counters once per second here (10 s by default), so that a test that
#: counts for a few seconds has a rate to draw.
SAMPLING = {"COURSEINFRA_COUNTER_SAMPLE_SECONDS": "1"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's backend, with an event stream (the embedded file, or Redis streams)."""
    return settings.model_copy(update={"event_stream": "redis" if settings.redis_url else "embedded"})


@pytest.mark.slow
def test_a_reader_lands_on_the_jobs_page_and_reads_the_rates_by_keyboard(
    browser: ConsoleBrowser, console_server: Served
) -> None:
    cli = console_server.cli
    for batch, count in enumerate((500, 1_500, 1_000)):
        lines = "".join(f"not json {batch} {n}\n" for n in range(count))
        assert cli("ingest", "-", stdin=lines, env=SAMPLING).returncode == 1  # every line is kept as failed
        time.sleep(1.1)  # the next process samples in another bucket

    browser.log_in(console_server.token("reader"))
    assert browser.page.url.endswith("/console/jobs")
    assert browser.text('#job-counters tr[data-job="ingest"] td.total') == "3,000"
    assert browser.text('#job-counters tr[data-job="ingest"] td.open') == "3,000"
    assert browser.page.locator("#job-counters a").count() == 0  # a reader opens no failed event
    # The chart is an image named by its title and described by its peak (its accessible name).
    chart = browser.page.get_by_role("img", name="ingest: events per second")
    assert chart.count() == 1
    assert "peak " in str(browser.page.locator("figure.rate svg desc").text_content())
    assert browser.page.locator("figure.rate polyline").count() >= 1
    browser.page.click("details.chart-table summary")  # the numbers behind the chart, as a table
    assert browser.page.locator("details.chart-table tbody tr").count() >= 1
    assert browser.page.locator("#streams").count() == 1  # the stream answers: a table, no error
    assert browser.page.locator("#streams-error").count() == 0
    browser.shoot()

    # The window selector by keyboard: its label names it, the next stop is its button.
    browser.page.get_by_label("Window").focus()
    browser.page.keyboard.press("End")  # the last option: 24 h
    browser.page.keyboard.press("Tab")
    assert browser.page.evaluate("document.activeElement.textContent") == "Show"
    with browser.page.expect_navigation():
        browser.page.keyboard.press("Enter")
    browser.shoot()
    assert browser.page.url.endswith("/console/jobs?window=24h")
    assert browser.page.input_value("#window") == "24h"
    assert browser.page.locator("figure.rate").count() == 1
    for shot in browser.shots:
        assert shot.stat().st_size > 1000, shot
