"""What operators read of the failed events before they replay them."""

from __future__ import annotations

from collections.abc import Sequence

from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.job_requests import Outcome
from courseinfra.services.failed_events.ports import FailedEvent
from courseinfra.services.unit_of_work import UowFactory


class FailedEventNotFound(DomainError):
    code = "failed-event-not-found"
    kind = ErrorKind.NOT_FOUND


def list_failed_events(
    uow_factory: UowFactory,
    *,
    job: str | None = None,
    outcomes: Sequence[Outcome] = (Outcome.FAILED,),
    include_resolved: bool = False,
    after_id: int = 0,
    limit: int = 100,
    code: str | None = None,
) -> list[FailedEvent]:
    """Kept events in id order after ``after_id``: unresolved failed ones unless told otherwise; of one
    job and one code when given."""
    with uow_factory().reading() as uow:
        return uow.failed_events.list(
            job=job,
            outcomes=outcomes,
            include_resolved=include_resolved,
            limit=limit,
            after_id=after_id,
            code=code,
        )


def get_failed_events(event_ids: Sequence[int], uow_factory: UowFactory) -> list[FailedEvent]:
    """The events of ``event_ids``, in that order; :class:`FailedEventNotFound` naming every id that is
    not kept."""
    with uow_factory().reading() as uow:
        found = {event_id: uow.failed_events.get(event_id) for event_id in event_ids}
    missing = [str(event_id) for event_id, event in found.items() if event is None]
    if missing:
        raise FailedEventNotFound(f"no failed event with id {', '.join(missing)}")
    return [event for event in found.values() if event is not None]


def open_failed_events(
    uow_factory: UowFactory, *, job: str | None = None, code: str | None = None, page: int = 1000
) -> list[FailedEvent]:
    """Every unresolved failed event (of one job, of one code, when given), in id order, read page by
    page."""
    events: list[FailedEvent] = []
    after = 0
    while found := list_failed_events(uow_factory, job=job, code=code, after_id=after, limit=page):
        events += found
        after = found[-1].id
    return events


def last_failed_id(uow_factory: UowFactory) -> int:
    """The highest id kept so far (0 when none): events kept later have higher ids."""
    with uow_factory().reading() as uow:
        return uow.failed_events.last_id()


def open_counts(uow_factory: UowFactory) -> dict[str, int]:
    """Unresolved failed (not skipped) events, by job."""
    with uow_factory().reading() as uow:
        return uow.failed_events.count_open()
