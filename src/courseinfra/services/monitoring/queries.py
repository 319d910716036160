"""What operators watch of the running system: each job's counters and open failures, the relays' lag,
the event streams' lengths, events per second over time (from the counters' samples, ADR 0025), and the
linked groups' drift and sync failures. The console's jobs page and the Prometheus collector read these
same queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from courseinfra.services.events.ports import Backlog, CounterSample, EventStream
from courseinfra.services.messagebus import AUDIT_RELAY, OUTBOX_RELAY
from courseinfra.services.unit_of_work import UnitOfWork, UowFactory

#: The counters of a job's events (each event counts once in ``total`` and once in its outcome).
EVENT_COUNTERS = ("total", "success", "skipped", "failed")


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job's cumulative counters (events and work, by counter name) and its failed events still open
    (kept, not resolved by a replay)."""

    job: str
    counters: dict[str, int]
    open_failed: int


@dataclass(frozen=True, slots=True)
class RelayLag:
    """What a relay (``outbox``: domain events; ``audit``: the AUDIT log) has not delivered yet:
    ``pending`` messages (AUDIT entries), the oldest committed at ``oldest`` (``age_seconds`` before
    the query; 0 when nothing is pending), and the failures of the next delivery, if it failed."""

    relay: str
    pending: int
    oldest: datetime | None
    age_seconds: float
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class SystemHealth:
    """One consistent reading of the database: every job, both relays, the open drift and the sync
    failures of the linked groups (by group id), and the report runs by status."""

    at: datetime
    jobs: list[JobStatus]
    relays: list[RelayLag]
    drift_by_group: dict[str, int] = field(default_factory=dict)
    sync_failures_by_group: dict[str, int] = field(default_factory=dict)
    report_runs_by_status: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RatePoint:
    """The rate of a counter between the previous sample and the one taken ``at``."""

    at: datetime
    per_second: float


@dataclass(frozen=True, slots=True)
class CounterRates:
    """A job's counter per second over time, oldest point first."""

    job: str
    counter: str
    points: list[RatePoint]


def system_health(uow_factory: UowFactory, *, now: datetime | None = None) -> SystemHealth:
    """The jobs, the relays' lag, the linked groups' drift and sync failures and the report runs, read
    in one snapshot. Cheap enough for every scrape: counts over indexed ranges, no legacy call."""
    at = now or datetime.now(UTC)
    with uow_factory().reading() as uow:
        return SystemHealth(
            at,
            _jobs(uow),
            _relays(uow, at),
            uow.drift.count_by_group(),
            uow.sync_log.count_by_group(),
            uow.report_runs.count_by_status(),
        )


def job_statuses(uow_factory: UowFactory) -> list[JobStatus]:
    """Every job that has counted or kept a failure, by name, with its counters and open failures."""
    with uow_factory().reading() as uow:
        return _jobs(uow)


def relay_lag(uow_factory: UowFactory, *, now: datetime | None = None) -> list[RelayLag]:
    """The lag of the outbox relay and of the AUDIT relay, in that order."""
    with uow_factory().reading() as uow:
        return _relays(uow, now or datetime.now(UTC))


def stream_lengths(stream: EventStream | None) -> dict[str, int]:
    """The entries each event stream keeps, by event type; empty when no stream is configured
    (``COURSEINFRA_EVENT_STREAM=off``). Raises what the stream's server raises when it does not answer."""
    return {} if stream is None else stream.lengths()


def event_rates(
    uow_factory: UowFactory,
    *,
    window: timedelta = timedelta(hours=1),
    counters: Sequence[str] = ("total",),
    now: datetime | None = None,
    spans: int | None = None,
) -> list[CounterRates]:
    """Each job's ``counters`` per second over the last ``window``, from the counters' samples (ADR
    0025): one point per sample after the first, the counter's increase since the previous sample over
    the time between them, by job then counter. A job or counter that appears in a sample started at 0
    in the one before. A time without counting has no samples: its rate shows on the first point after
    it, spread over the whole gap.

    ``spans``: read only the last sample of each of that many equal spans of the window (and the one
    before the window), so that a chart of a day reads a few dozen samples of the counters it shows
    instead of every counter's thousands (ADR 0028). The counters being cumulative, each point is then
    the exact mean rate since the previous one."""
    end = now or datetime.now(UTC)
    since = end - window
    with uow_factory().reading() as uow:
        if spans is None:
            samples = uow.counters.samples(since)
        else:
            buckets = last_of_each_span(uow.counters.sample_buckets(since), since, end, spans)
            samples = uow.counters.samples_at(buckets, counters)
    return rates(samples, counters)


def last_of_each_span(
    buckets: Sequence[datetime], since: datetime, end: datetime, spans: int
) -> list[datetime]:
    """Of ``buckets`` (in order), the last of each of ``spans`` equal spans from ``since`` to ``end`` (a
    bucket after ``end`` in the last span), after the last bucket before ``since`` or, without one, the
    first bucket: where the first difference starts."""
    width = (end - since) / max(spans, 1)
    last: dict[int, datetime] = {}
    for bucket in buckets:
        span = -1 if bucket < since else min(int((bucket - since) / width), spans - 1)
        last[span] = bucket
    if buckets and -1 not in last:
        last[-1] = buckets[0]
    return sorted(set(last.values()))


def rates(samples: Sequence[CounterSample], counters: Sequence[str] = ("total",)) -> list[CounterRates]:
    """:func:`event_rates` of the samples given (ordered by bucket, as the store returns them)."""
    wanted = set(counters)
    snapshots: list[tuple[datetime, datetime, dict[tuple[str, str], int]]] = []
    for sample in samples:
        if not snapshots or snapshots[-1][0] != sample.bucket:
            snapshots.append((sample.bucket, sample.at, {}))
        if sample.counter in wanted:
            snapshots[-1][2][sample.job, sample.counter] = sample.value
    series: dict[tuple[str, str], list[RatePoint]] = {}
    for (_, before, previous), (_, at, current) in pairwise(snapshots):
        seconds = (at - before).total_seconds()
        if seconds <= 0:
            continue
        for key, value in current.items():
            # A counter is never lowered; one lower than before was reset (a restored database): it
            # counted from 0 since.
            earlier = previous.get(key, 0)
            increase = value - earlier if value >= earlier else value
            series.setdefault(key, []).append(RatePoint(at, increase / seconds))
    return [CounterRates(job, counter, points) for (job, counter), points in sorted(series.items())]


def _jobs(uow: UnitOfWork) -> list[JobStatus]:
    counters = uow.counters.all()
    open_failed = uow.failed_events.count_open()
    return [
        JobStatus(job, counters.get(job, {}), open_failed.get(job, 0))
        for job in sorted(counters.keys() | open_failed.keys())
    ]


def _relays(uow: UnitOfWork, now: datetime) -> list[RelayLag]:
    cursor = uow.cursors.get(AUDIT_RELAY)
    count, oldest = uow.audits.pending_after(cursor.position)
    audit = Backlog(count, oldest, cursor.attempts, cursor.last_error)
    return [_lag(OUTBOX_RELAY, uow.outbox.backlog(), now), _lag(AUDIT_RELAY, audit, now)]


def _lag(relay: str, backlog: Backlog, now: datetime) -> RelayLag:
    age = 0.0 if backlog.oldest is None else max(0.0, (now - backlog.oldest).total_seconds())
    return RelayLag(relay, backlog.pending, backlog.oldest, age, backlog.attempts, backlog.last_error)
