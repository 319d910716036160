"""Prometheus metrics read from the database (and the event stream) at scrape time.

Every family is read through the monitoring queries the console reads too; deploy/grafana/courseinfra.json
charts them, and a test checks that every metric its expressions name is exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from courseinfra.bootstrap import App
from courseinfra.services import monitoring

log = logging.getLogger(__name__)
F = TypeVar("F", GaugeMetricFamily, CounterMetricFamily)


class CountersCollector:
    """Reads the job counters, the open failed events, the relays' lag, the event streams' lengths, the
    linked groups' drift and sync failures and the report runs at each scrape. A stream server that
    does not answer leaves its family out (logged), not the whole scrape."""

    def __init__(self, app: Callable[[], App]) -> None:
        self._app = app

    def describe(self) -> Iterable[Metric]:
        # Declared so that registering the collector does not query the database.
        return [family() for family in FAMILIES]

    def collect(self) -> Iterable[Metric]:
        app = self._app()
        health = monitoring.system_health(app.uow_factory)
        counters, open_failed = _counters_family(), _open_failed_family()
        for job in health.jobs:
            for name, value in sorted(job.counters.items()):
                counters.add_metric([job.job, name], value)
            open_failed.add_metric([job.job], job.open_failed)
        yield counters
        yield open_failed
        pending, age = _relay_pending_family(), _relay_age_family()
        for lag in health.relays:
            pending.add_metric([lag.relay], lag.pending)
            age.add_metric([lag.relay], lag.age_seconds)
        yield pending
        yield age
        try:
            lengths = monitoring.stream_lengths(app.stream)
        except Exception:
            log.warning("reading the event streams' lengths failed; left out of this scrape", exc_info=True)
        else:
            streams = _stream_length_family()
            for event_type, length in sorted(lengths.items()):
                streams.add_metric([event_type], length)
            yield streams
        yield _by_label(_drift_family(), health.drift_by_group)
        yield _by_label(_sync_failures_family(), health.sync_failures_by_group)
        yield _by_label(_report_runs_family(), health.report_runs_by_status)


def _by_label(family: F, values: dict[str, int]) -> F:
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family


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


def _relay_pending_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "courseinfra_relay_pending",
        "Messages committed and not yet delivered by the relay (outbox: domain events; audit: AUDIT entries).",
        labels=["relay"],
    )


def _relay_age_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "courseinfra_relay_oldest_pending_age_seconds",
        "How long ago the oldest undelivered message of the relay was committed (0: none pending).",
        labels=["relay"],
    )


def _stream_length_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "courseinfra_event_stream_length",
        "Entries each event stream keeps (COURSEINFRA_EVENT_STREAM), by event type.",
        labels=["event_type"],
    )


def _drift_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "courseinfra_legacy_drift_open",
        "Users whose legacy membership differs from their linked user group's (user_group authority), "
        "until reconciliation, by group.",
        labels=["group_id"],
    )


def _sync_failures_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "courseinfra_legacy_sync_failures",
        "Linked-group operations that failed on the legacy side, by group.",
        labels=["group_id"],
    )


def _report_runs_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "courseinfra_report_runs",
        "Course report runs kept, by status.",
        labels=["status"],
    )


FAMILIES: tuple[Callable[[], Metric], ...] = (
    _counters_family,
    _open_failed_family,
    _relay_pending_family,
    _relay_age_family,
    _stream_length_family,
    _drift_family,
    _sync_failures_family,
    _report_runs_family,
)
