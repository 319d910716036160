"""Prometheus metrics read from the database at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from courseinfra.bootstrap import App
from courseinfra.services import events, failed_events


class CountersCollector:
    """Reads the cumulative job counters and the open failed events from the database at scrape time."""

    def __init__(self, app: Callable[[], App]) -> None:
        self._app = app

    def describe(self) -> Iterable[Metric]:
        # Declared so that registering the collector does not query the database.
        return [_counters_family(), _open_failed_family()]

    def collect(self) -> Iterable[Metric]:
        app = self._app()
        counters = events.job_counters(app.uow_factory)
        open_by_job = failed_events.open_counts(app.uow_factory)
        family = _counters_family()
        for job, counts in sorted(counters.items()):
            for name, value in sorted(counts.items()):
                family.add_metric([job, name], value)
        yield family
        open_failed = _open_failed_family()
        for job, count in sorted(open_by_job.items()):
            open_failed.add_metric([job], count)
        yield open_failed


def _counters_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "courseinfra_job",
        "Cumulative counters of each job: events (total, success, skipped, failed) and work (cache-writes, db-reads, ...).",
        labels=["job", "counter"],
    )


def _open_failed_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "courseinfra_failed_events_open",
        "Failed events kept and not yet resolved by a replay.",
        labels=["job"],
    )
