"""Failed events: what the jobs did not process, kept with their reasons until replayed."""

from courseinfra.services.failed_events.queries import (
    FailedEventNotFound,
    get_failed_events,
    last_failed_id,
    list_failed_events,
    open_counts,
    open_failed_events,
)

__all__ = [
    "FailedEventNotFound",
    "get_failed_events",
    "last_failed_id",
    "list_failed_events",
    "open_counts",
    "open_failed_events",
]
