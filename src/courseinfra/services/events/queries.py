"""What operators read of the jobs."""

from __future__ import annotations

from courseinfra.services.unit_of_work import UowFactory


def job_counters(uow_factory: UowFactory) -> dict[str, dict[str, int]]:
    """Cumulative counters of every job, by job and counter name."""
    with uow_factory().reading() as uow:
        return uow.counters.all()
