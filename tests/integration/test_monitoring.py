"""Monitoring on every backend (ADR 0025): the counters sampled by the processes that count, events per
second from the samples, and /metrics exporting the relays' lag, the streams' lengths, the linked groups'
drift and failures and the report runs of a seeded application."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.events import AuditEventEmitted, UserLoggedIn
from courseinfra.domain.progress import AuditAction, AuditObject, AuditRecord, EnrolmentKey
from courseinfra.domain.reports import ReportRun, RunStatus
from courseinfra.services import monitoring
from courseinfra.services.events.ingest import ingest
from courseinfra.services.monitoring import CounterSampler, RatePoint
from courseinfra.services.sync.ports import DriftSide, SyncFailure
from courseinfra.services.unit_of_work import UnitOfWork
from courseinfra.settings import Settings
from tests.support.http import api_client
from tests.support.servers import REPO

#: A wall clock of the samplers, far from the real one (2030-03-17 17:46:40 UTC).
T = 1_900_000_000.0
LOGIN = UserLoggedIn.event_type


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def bad_lines(count: int) -> list[str]:
    return [f"not json {n}" for n in range(count)]


def sampler_of(app: App) -> CounterSampler:
    assert app.sampler is not None
    return app.sampler


def test_processes_that_count_sample_the_counters_once_per_bucket(settings: Settings) -> None:
    """Two processes on one database (two applications): the first counting commit of a bucket, in
    either, samples; the other's attempt in that bucket adds nothing."""
    clock = Clock(T + 1)
    first, second = bootstrap(settings), bootstrap(settings)
    try:
        for app in (first, second):
            sampler_of(app).clock = clock
        ingest(bad_lines(3), "a", first.router, first.uow_factory)
        clock.now = T + 4
        ingest(bad_lines(2), "b", second.router, second.uow_factory)  # same bucket: not sampled
        clock.now = T + 12
        ingest(bad_lines(4), "c", second.router, second.uow_factory)
        clock.now = T + 15
        ingest(bad_lines(1), "d", second.router, second.uow_factory)  # tried in this bucket already
        clock.now = T + 22
        ingest(bad_lines(1), "e", first.router, first.uow_factory)
        rates = monitoring.event_rates(
            first.uow_factory, counters=("total", "failed"), window=timedelta(minutes=5), now=at(T + 30)
        )
        recent = monitoring.event_rates(first.uow_factory, window=timedelta(seconds=10), now=at(T + 25))
    finally:
        first.close()
        second.close()
    # The samples: 3 at T+1, 9 at T+12, 11 at T+22.
    expected = [RatePoint(at(T + 12), 6 / 11), RatePoint(at(T + 22), 2 / 10)]
    assert [(r.job, r.counter, r.points) for r in rates] == [
        ("ingest", "failed", expected),
        ("ingest", "total", expected),
    ]
    # A window that begins after the samples' start still measures from the sample before it.
    assert [r.points for r in recent] == [[RatePoint(at(T + 22), 2 / 10)]]


def test_a_process_tries_at_most_once_per_bucket_and_prunes_after_the_retention(app: App) -> None:
    opened: list[int] = []

    def counting_factory() -> UnitOfWork:
        opened.append(1)
        return app.uow_factory()

    clock = Clock(T)
    sampler = CounterSampler(counting_factory, timedelta(seconds=10), timedelta(seconds=60), clock=clock)
    ingest(bad_lines(1), "a", app.router, app.uow_factory)
    for now in (T, T + 3, T + 9.9):
        clock.now = now
        sampler.counted()
    assert len(opened) == 1
    for bucket in range(1, 9):
        clock.now = T + 10 * bucket
        sampler.counted()
    assert len(opened) == 9
    with app.uow_factory().reading() as uow:
        buckets = sorted({sample.bucket for sample in uow.counters.samples(at(0))})
    # Sampled at T+80: what is older than T+20 is gone.
    assert buckets == [at(T + 10 * n) for n in range(2, 9)]


def test_rates_over_spans_read_the_last_sample_of_each_and_are_the_mean_rates(app: App) -> None:
    """A chart's reading (ADR 0028): the last sample of each span, each point the exact mean rate of the
    samples it stands for, since the counters are cumulative."""
    clock = Clock(T)
    sampler_of(app).clock = clock
    for n in range(60):  # a sample every 10 s for ten minutes, of 1 to 3 events each
        clock.now = T + 10 * n
        ingest(bad_lines(n % 3 + 1), f"s{n}", app.router, app.uow_factory)
    window, now = timedelta(minutes=10), at(T + 605)
    [every] = monitoring.event_rates(app.uow_factory, window=window, now=now)
    [spans] = monitoring.event_rates(app.uow_factory, window=window, now=now, spans=5)
    # The window starts at T+5: the sample of T (before it) starts the first difference.
    assert [point.at for point in spans.points] == [at(T + s) for s in (120, 240, 360, 480, 590)]
    previous = at(T)
    for point in spans.points:
        # Each 10 s point of every sample stands for its 10 s; the span's point for the time since the
        # previous span's.
        events = sum(p.per_second * 10 for p in every.points if previous < p.at <= point.at)
        assert point.per_second == pytest.approx(events / (point.at - previous).total_seconds())
        previous = point.at
    assert spans.points[0].per_second == pytest.approx((2 + 3 + 1) * 4 / 120)  # 24 events in 120 s
    # Samples in one span only, none before the window: the first starts the difference.
    [recent] = monitoring.event_rates(app.uow_factory, window=timedelta(hours=6), now=at(T + 600), spans=5)
    assert recent.points == [RatePoint(at(T + 590), (sum(n % 3 + 1 for n in range(60)) - 1) / 590)]


@pytest.fixture
def seeded(settings: Settings) -> Iterator[App]:
    """An application that relays only by hand, with an event stream, and state of every kind the
    metrics read."""
    streaming = settings.model_copy(update={"event_stream": "redis" if settings.redis_url else "embedded"})
    app = bootstrap(streaming, publish_on_commit=False)
    now = datetime.now(UTC)
    for user in ("u1", "u2", "u3"):
        with app.uow_factory() as uow:
            uow.record(UserLoggedIn(user_id=user, logged_in_at=now.isoformat()))
            uow.commit(now)
    app.relay()  # three entries in the login stream
    with app.uow_factory() as uow:
        uow.record(*(UserLoggedIn(user_id=f"late{n}", logged_in_at=now.isoformat()) for n in range(2)))
        key = EnrolmentKey("u1", "c1", "b1")
        records = [AuditRecord(key, AuditObject.CONTENT, f"r{n}", AuditAction.START) for n in range(4)]
        uow.record_audit([(record, None) for record in records], now - timedelta(minutes=5))
        uow.commit(now - timedelta(minutes=2))  # two outbox messages committed two minutes ago
        uow.drift.record(
            "g1", {"u1": DriftSide.ONLY_IN_LEGACY_GROUP, "u2": DriftSide.ONLY_IN_USER_GROUP}, now, "test"
        )
        for group in ("g1", "g2", "g2"):
            uow.sync_log.add(SyncFailure(0, now, group, "add-members", "bad", "legacy said no", ()))
        for run_id, status in (
            ("r1", RunStatus.SUCCEEDED),
            ("r2", RunStatus.FAILED),
            ("r3", RunStatus.FAILED),
        ):
            uow.report_runs.add(ReportRun(run_id, date(2026, 1, 1), status, now))
        uow.commit()
    ingest(bad_lines(3), "events", app.router, app.uow_factory)
    yield app
    app.close()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(app: App) -> Samples:
    response = api_client(app, role="reader").get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_export_the_relays_streams_drift_failures_and_report_runs(seeded: App) -> None:
    metrics = scrape(seeded)
    assert metrics["courseinfra_relay_pending", (("relay", "outbox"),)] == 2
    assert 110 < metrics["courseinfra_relay_oldest_pending_age_seconds", (("relay", "outbox"),)] < 600
    assert metrics["courseinfra_relay_pending", (("relay", "audit"),)] == 4
    assert 290 < metrics["courseinfra_relay_oldest_pending_age_seconds", (("relay", "audit"),)] < 600
    assert metrics["courseinfra_event_stream_length", (("event_type", LOGIN),)] == 3
    assert metrics["courseinfra_legacy_drift_open", (("group_id", "g1"),)] == 2
    assert metrics["courseinfra_legacy_sync_failures_total", (("group_id", "g1"),)] == 1
    assert metrics["courseinfra_legacy_sync_failures_total", (("group_id", "g2"),)] == 2
    assert metrics["courseinfra_report_runs", (("status", "failed"),)] == 2
    assert metrics["courseinfra_report_runs", (("status", "succeeded"),)] == 1
    assert metrics["courseinfra_job_total", (("counter", "failed"), ("job", "ingest"))] == 3
    assert metrics["courseinfra_failed_events_open", (("job", "ingest"),)] == 3

    seeded.relay()
    after = scrape(seeded)
    assert after["courseinfra_relay_pending", (("relay", "outbox"),)] == 0
    assert after["courseinfra_relay_oldest_pending_age_seconds", (("relay", "outbox"),)] == 0
    assert after["courseinfra_relay_pending", (("relay", "audit"),)] == 0
    assert after["courseinfra_event_stream_length", (("event_type", LOGIN),)] == 5
    assert after["courseinfra_event_stream_length", (("event_type", AuditEventEmitted.event_type),)] == 4


def test_the_jobs_status_reads_what_the_metrics_read(seeded: App) -> None:
    health = monitoring.system_health(seeded.uow_factory)
    assert [(job.job, job.counters, job.open_failed) for job in health.jobs] == [
        ("ingest", {"total": 3, "failed": 3}, 3)
    ]
    assert [(lag.relay, lag.pending) for lag in health.relays] == [("outbox", 2), ("audit", 4)]
    outbox, audit = monitoring.relay_lag(seeded.uow_factory)
    assert outbox.oldest is not None
    assert audit.oldest is not None
    assert audit.oldest + timedelta(minutes=3) == outbox.oldest
    assert (outbox.attempts, outbox.last_error, audit.attempts, audit.last_error) == (0, None, 0, None)
    assert monitoring.stream_lengths(seeded.stream) == {LOGIN: 3}
    assert monitoring.stream_lengths(None) == {}


DASHBOARD = REPO / "deploy" / "grafana" / "courseinfra.json"
#: What PromQL names that is no metric: keywords and the matchers' operators' words.
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: its identifiers once strings, label matchers,
    ranges and grouping clauses are taken out, less functions (followed by a parenthesis) and
    keywords."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    names = set()
    for match in re.finditer(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*", bare):
        rest = bare[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def walk(node: Any) -> Iterator[Any]:
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from walk(child)


def test_metric_names_are_read_from_promql() -> None:
    expr = 'sum by (job, counter) (rate(courseinfra_job_total{counter=~"a|b"}[5m])) / on (job) up offset 1m'
    assert metric_names(expr) == {"courseinfra_job_total", "up"}


def test_the_grafana_dashboard_charts_only_metrics_that_metrics_exports(seeded: App) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(dashboard["title"], str)
    assert isinstance(dashboard["schemaVersion"], int)
    [variable] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    # Every datasource is the variable's: none is tied to one Grafana's uid.
    sources = [n["datasource"] for n in walk(dashboard) if isinstance(n, dict) and "datasource" in n]
    assert sources
    assert all(source == {"type": "prometheus", "uid": f"${{{variable['name']}}}"} for source in sources)
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in ("h", "w", "x", "y")), panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])
    exported = {name for (name, _) in scrape(seeded)}
    used = {panel["title"]: metric_names(target["expr"]) for panel in panels for target in panel["targets"]}
    assert all(used.values()), [title for title, names in used.items() if not names]
    unknown = {title: names - exported for title, names in used.items() if names - exported}
    assert unknown == {}, f"not exported by /metrics: {unknown}"
    # Every family /metrics exports is charted.
    charted = set().union(*used.values())
    assert {name.removesuffix("_created") for name in exported} <= charted
