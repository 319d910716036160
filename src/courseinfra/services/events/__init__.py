"""The event pipeline: ingesting event lines, the jobs' results and counters, the event streams."""

from courseinfra.services.events.queries import (
    job_counters,
)

__all__ = [
    "job_counters",
]
