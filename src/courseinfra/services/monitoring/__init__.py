"""Monitoring: the jobs' status, the relays' lag, the event streams' lengths and events per second over
time, for the console and the Prometheus metrics (ADR 0025)."""

from courseinfra.services.monitoring.queries import (
    EVENT_COUNTERS,
    CounterRates,
    JobStatus,
    RatePoint,
    RelayLag,
    SystemHealth,
    event_rates,
    job_statuses,
    rates,
    relay_lag,
    stream_lengths,
    system_health,
)
from courseinfra.services.monitoring.sampling import CounterSampler, bucket_start

__all__ = [
    "EVENT_COUNTERS",
    "CounterRates",
    "CounterSampler",
    "JobStatus",
    "RatePoint",
    "RelayLag",
    "SystemHealth",
    "bucket_start",
    "event_rates",
    "job_statuses",
    "rates",
    "relay_lag",
    "stream_lengths",
    "system_health",
]
