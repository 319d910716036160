"""The jobs page of ``bench/console_pages.py``: its seeding and the requests timed.

Seeded after the other pages' data (not measured): a day of samples of the job counters (ADR 0025), as
if the jobs had counted without a pause for the retention's 24 hours at the default sampling period: one
sample every :data:`SAMPLE_SECONDS` of every counter the seeding left (a few jobs' events and work
counters), bulk-inserted with SQLAlchemy Core in place of the few samples the seeding's own counting
took, their values growing at a steady rate per job. The last sample is the counters' current value.

Timed: the jobs page over each window of its selector; 24 hours is the one that reads the most samples.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from courseinfra.adapters.sql.tables import job_counter_samples
from courseinfra.bootstrap import App
from courseinfra.services import events
from courseinfra.services.monitoring import bucket_start

#: The default sampling period (``COURSEINFRA_COUNTER_SAMPLE_SECONDS``) and the retention's hours.
SAMPLE_SECONDS, HOURS = 10, 24
SEED_CHUNK = 20_000


def seed_samples(app: App, now: datetime) -> int:
    """A day of samples of the current counters up to ``now``; return how many rows."""
    every = timedelta(seconds=SAMPLE_SECONDS)
    counters = events.job_counters(app.uow_factory)
    count = HOURS * 3600 // SAMPLE_SECONDS
    last = bucket_start(now, every)
    rows = []
    for n in range(count):
        bucket = last - (count - 1 - n) * every
        share = (n + 1) / count  # each counter grows steadily to its current value
        for job, values in counters.items():
            for counter, value in values.items():
                rows.append(
                    {
                        "bucket": bucket,
                        "job": job,
                        "counter": counter,
                        "value": int(value * share),
                        "taken_at": bucket + timedelta(seconds=1),
                    }
                )
    with app.engine.begin() as connection:
        connection.execute(job_counter_samples.delete())  # the few the seeding's own counting took
        for start in range(0, len(rows), SEED_CHUNK):
            connection.execute(job_counter_samples.insert(), rows[start : start + SEED_CHUNK])
    return len(rows)


def jobs_pages() -> list[tuple[str, str]]:
    """(name, path) of the pages timed, in the table's order."""
    return [
        (f"jobs: counters, rates over {hours} h, relays, streams", f"/console/jobs?window={hours}h")
        for hours in (1, 6, 24)
    ]
