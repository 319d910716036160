"""The console's jobs page in process, on every backend: the counters, open failed events, events per
second, relays' lag, streams' lengths, drift, sync failures and report runs it shows are the seeded
state's (read through ``services.monitoring``, as ``/metrics``); the window selector; the roles that may
not read it see no link and get 403; a stream that is off or does not answer is a message, not an
error page. The charts' resampling and geometry are checked without a database."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import redis

from courseinfra.adapters.streams import RedisEventStream
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.events import UserLoggedIn
from courseinfra.domain.reports import ReportRun, RunStatus
from courseinfra.entrypoints.console.timeseries import line_chart, nice_ceiling, rate_text, resample
from courseinfra.services.events.ingest import ingest
from courseinfra.services.monitoring import RatePoint
from courseinfra.services.sync.ports import DriftSide, SyncFailure
from courseinfra.settings import Settings
from tests.support.cli import free_port
from tests.support.console import console_client, login, new_secret

#: A post-publish event for a course the store does not hold: kept as failed by the relation cache job.
UNSTORED = (
    '{"eid":"BE_JOB_REQUEST","mid":"m1","edata":{"action":"post-publish-process","identifier":"democourse",'
    '"mimeType":"application/vnd.ekstep.content-collection"}}'
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def bad_lines(count: int, tag: str) -> list[str]:
    return [f"not json {tag} {n}" for n in range(count)]


def cell(html: str, row: str, column: str) -> str:
    """The text of a ``<td class="column">`` in the row marked ``row`` (``data-job="ingest"``)."""
    found = re.search(
        rf'<tr {re.escape(row)}>.*?<td class="[^"]*\b{re.escape(column)}\b[^"]*">(.*?)</td>', html, re.S
    )
    assert found, (row, column)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


@pytest.fixture
def seeded(settings: Settings) -> Iterator[App]:
    """An application with an event stream that relays by hand, whose counters were sampled ten and
    eight minutes ago (1,200 lines, then 1,200 more in 120 s), with two
    relayed and one pending outbox message, drift, sync failures and report runs."""
    streaming = settings.model_copy(update={"event_stream": "redis" if settings.redis_url else "embedded"})
    app = bootstrap(streaming, publish_on_commit=False)
    assert app.sampler is not None
    start = time.time() - 600
    app.sampler.clock = Clock(start)
    ingest(bad_lines(1_200, "a"), "first", app.router, app.uow_factory, chunk_size=5_000)
    app.sampler.clock = Clock(start + 120)
    ingest([*bad_lines(1_199, "b"), UNSTORED], "second", app.router, app.uow_factory, chunk_size=5_000)
    now = datetime.now(UTC)
    with app.uow_factory() as uow:
        uow.record(*(UserLoggedIn(user_id=f"u{n}", logged_in_at=now.isoformat()) for n in range(2)))
        uow.commit(now - timedelta(minutes=3))
    app.relay()  # two entries in the login stream
    with app.uow_factory() as uow:
        uow.record(UserLoggedIn(user_id="late", logged_in_at=now.isoformat()))
        uow.drift.record(
            "g-drift", {"u1": DriftSide.ONLY_IN_LEGACY_GROUP, "u2": DriftSide.ONLY_IN_USER_GROUP}, now, "test"
        )
        for group in ("g-drift", "g-fail", "g-fail"):
            uow.sync_log.add(SyncFailure(0, now, group, "add-members", "bad", "legacy said no", ()))
        for run_id, status in (
            ("r1", RunStatus.SUCCEEDED),
            ("r2", RunStatus.FAILED),
            ("r3", RunStatus.FAILED),
        ):
            uow.report_runs.add(ReportRun(run_id, date(2026, 1, 1), status, now))
        uow.commit(now - timedelta(minutes=2))  # one outbox message pending for two minutes
    yield app
    app.close()


def test_the_jobs_page_shows_the_seeded_state(seeded: App) -> None:
    page = console_client(seeded, "operator").get("/console/jobs")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'aria-current="page">Jobs<' in html
    assert cell(html, 'data-job="ingest"', "total") == "2,399"  # thousands separated
    assert cell(html, 'data-job="ingest"', "failed") == "2,399"
    assert cell(html, 'data-job="ingest"', "success") == "0"
    assert cell(html, 'data-job="ingest"', "open") == "2,399"
    # Open failed events link to the failed events page filtered by their job.
    assert 'href="/console/failed-events?job=ingest"' in html
    assert 'href="/console/failed-events?job=relation-cache-updater"' in html
    assert cell(html, 'data-job="relation-cache-updater"', "open") == "1"
    # Events per second: the ingest job's 1,199 events in the 120 s between the samples, in an SVG line
    # chart per job with its title and its numbers in a table.
    chart = re.search(r'<figure class="chart rate" id="rate-0">.*?</details>', html, re.S)
    assert chart, html
    assert '<title id="rate-0-title">ingest: events per second</title>' in chart.group(0)
    assert 'role="img"' in chart.group(0)
    assert "<polyline" in chart.group(0)
    assert "peak 9.99/s" in chart.group(0)
    assert re.search(r"<td>9\.99</td>", chart.group(0))
    assert "relation-cache-updater: events per second" in html  # 1 in 120 s
    assert re.search(r"<td>0\.00833</td>", html)
    assert "<script" not in html
    # Relays: the outbox has one message pending for about two minutes; the streams' lengths.
    assert cell(html, 'data-relay="outbox"', "pending") == "1"
    assert re.fullmatch(r"2 min \d+ s", cell(html, 'data-relay="outbox"', "age"))
    assert cell(html, 'data-relay="audit"', "pending") == "0"
    login_stream = re.escape(UserLoggedIn.event_type)
    assert re.search(rf'<tr data-stream="{login_stream}"><th scope="row">{login_stream}</th><td>2</td>', html)
    # Drift, sync failures and report runs, linked to the pages that show them.
    assert re.search(r'id="drift".*?data-group="g-drift".*?<td>2</td>', html, re.S)
    assert re.search(r'id="sync-failures".*?data-group="g-fail".*?<td>2</td>', html, re.S)
    assert re.search(r'id="report-runs".*?data-status="failed".*?<td>2</td>', html, re.S)
    assert 'href="/console/groups/g-drift"' in html
    assert 'href="/console/links"' in html
    assert 'href="/console/batches"' in html


def test_the_window_selector_changes_the_charts_window(seeded: App) -> None:
    client = console_client(seeded, "reader")
    for window, slot in [("1h", "1 min"), ("6h", "6 min"), ("24h", "24 min")]:
        page = client.get("/console/jobs", params={"window": window})
        assert page.status_code == 200
        assert re.search(rf'<option value="{window}" selected>', page.text)
        assert '<label for="window">Window</label>' in page.text
        rows = re.findall(r'<tr><th scope="row">(\d{4}-\d\d-\d\d [\d:]+)</th><td>([\d:]+)</td>', page.text)
        assert rows, window
        start, end = (
            datetime.strptime(rows[0][0][11:], "%H:%M:%S"),
            datetime.strptime(rows[0][1], "%H:%M:%S"),
        )
        assert (end - start) % timedelta(days=1) == timedelta(minutes=int(slot.split()[0])), window
    assert client.get("/console/jobs", params={"window": "2h"}).status_code == 422


def test_a_page_without_samples_says_so(app: App) -> None:
    page = console_client(app, "reader").get("/console/jobs")
    assert page.status_code == 200
    assert 'id="no-rates"' in page.text
    assert "No job has counted an event yet." in page.text
    assert "No event stream is configured" in page.text  # the default: the stream is off
    assert 'id="streams"' not in page.text
    assert 'id="streams-error"' not in page.text


def test_a_reader_sees_no_link_it_may_not_follow(seeded: App) -> None:
    html = console_client(seeded, "reader").get("/console/jobs").text
    assert cell(html, 'data-job="ingest"', "open") == "2,399"
    assert "/console/failed-events" not in html  # a reader may not open the failed events page


@pytest.mark.parametrize(("role", "scope"), [("ingest", None), ("course_staff", "course:democourse")])
def test_a_role_without_read_on_the_instance_gets_403_and_no_link(
    app: App, role: str, scope: str | None
) -> None:
    client = console_client(app, role, scope=scope)
    home = client.get("/console/")
    assert 'href="/console/jobs"' not in home.text
    page = client.get("/console/jobs")
    assert page.status_code == 403
    assert "Traceback" not in page.text


def test_logging_in_lands_on_the_jobs_page_when_the_role_may_read_it(app: App) -> None:
    from fastapi.testclient import TestClient

    from courseinfra.entrypoints.api import create_app

    for role, landing in [
        ("reader", "/console/jobs"),
        ("operator", "/console/jobs"),
        ("ingest", "/console/"),
    ]:
        client = TestClient(create_app(app), follow_redirects=False)
        answer = login(client, new_secret(app, role))
        assert answer.status_code == 303
        assert answer.headers["location"] == landing, role


def test_a_stream_that_does_not_answer_is_a_message(app: App) -> None:
    ingest(bad_lines(3, "x"), "x", app.router, app.uow_factory)
    app.stream = RedisEventStream(redis.Redis(port=free_port(), socket_connect_timeout=1), 10)
    try:
        page = console_client(app, "reader").get("/console/jobs")
    finally:
        stream, app.stream = app.stream, None
        stream.close()
    assert page.status_code == 200
    assert "The event stream did not answer (ConnectionError)" in page.text
    assert cell(page.text, 'data-job="ingest"', "total") == "3"  # the rest of the page is there


# The charts, without a database.

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_resample_weights_each_rate_by_the_time_it_covers() -> None:
    points = [
        RatePoint(T0 + timedelta(seconds=10), 1.0),  # covers 0-10 (the sampling period before it)
        RatePoint(T0 + timedelta(seconds=20), 3.0),  # 10-20
        RatePoint(T0 + timedelta(seconds=50), 2.0),  # 20-50: an idle time spread over its span
    ]
    slots = resample(
        points, start=T0, end=T0 + timedelta(seconds=60), slots=3, first_span=timedelta(seconds=10)
    )
    assert [slot.per_second for slot in slots] == [2.0, 2.0, 2.0]  # (10*1 + 10*3) / 20, 2, 2 over 10 of 20
    later = resample(
        points, start=T0, end=T0 + timedelta(seconds=120), slots=4, first_span=timedelta(seconds=10)
    )
    assert [slot.per_second for slot in later] == [2.0, 2.0, None, None]
    empty = resample([], start=T0, end=T0 + timedelta(hours=1), slots=60, first_span=timedelta(seconds=10))
    assert len(empty) == 60
    assert empty[1].start == T0 + timedelta(minutes=1)
    assert all(slot.per_second is None for slot in empty)
    outside = [RatePoint(T0 - timedelta(minutes=5), 9.0)]
    assert all(
        slot.per_second is None
        for slot in resample(
            outside, start=T0, end=T0 + timedelta(minutes=1), slots=6, first_span=timedelta(seconds=10)
        )
    )


def test_a_line_chart_breaks_where_no_sample_covers_and_reads_round_numbers() -> None:
    points = [RatePoint(T0 + timedelta(seconds=s), r) for s, r in [(10, 1.0), (20, 3.0)]]
    slots = resample(
        points, start=T0, end=T0 + timedelta(seconds=60), slots=6, first_span=timedelta(seconds=10)
    )
    slots += resample(
        [RatePoint(T0 + timedelta(seconds=90), 4.0)],
        start=T0 + timedelta(seconds=60),
        end=T0 + timedelta(seconds=120),
        slots=6,
        first_span=timedelta(seconds=10),
    )
    chart = line_chart("c", "ingest: events per second", slots)
    assert len(chart.lines) == 2  # two runs of covered slots, broken by the idle spans between
    assert chart.peak == 5.0
    assert [tick.text for tick in chart.y_ticks] == ["0/s", "2.5/s", "5/s"]
    assert [tick.text for tick in chart.x_ticks] == ["12:00", "12:01", "12:02"]
    assert chart.description.startswith("peak 4/s at 12:01 UTC")
    assert line_chart("e", "empty", []).description == "no samples in this window"
    assert [nice_ceiling(v) for v in (0, 0.03, 1, 1.2, 2.2, 3, 7, 1234)] == [1, 0.05, 1, 2, 2.5, 5, 10, 2000]
    assert [rate_text(v) for v in (0, 0.0004, 0.0123, 19.94, 1234.6)] == [
        "0",
        "<0.001",
        "0.0123",
        "19.9",
        "1,235",
    ]
