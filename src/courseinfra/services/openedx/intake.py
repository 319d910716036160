"""The Open edX intake as a job (ADR 0022): Open edX events, whether read off the bus or posted to the
webhook, pass through ``ingest`` like every event, so that a bad one is kept in failed events with its
reason and can be replayed, and the counters count them.

Each event is read (:class:`MessageReader`, the wire adapter), then applied unless its envelope ``id``
was applied before: :attr:`OpenedxEventsJob.apply` makes the linked user groups it touches agree with
the legacy system for the users concerned (a targeted pull: state-based, so applying twice changes
nothing), and the id is recorded. A failure of the legacy system keeps the event as failed, to be
replayed (reconciliation repairs what is never replayed).

The webhook (``POST /v1/openedx/events``) takes Open edX events only: :func:`openedx_only` routes what
it is posted to this job alone, and keeps anything else as failed (``not-an-openedx-event``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from courseinfra.domain.errors import DomainError
from courseinfra.domain.job_requests import Outcome, Rejection
from courseinfra.domain.openedx_events import OpenedxMessage
from courseinfra.domain.quoting import json_text
from courseinfra.services.events.ingest import Router
from courseinfra.services.events.jobs import EventResult, IncomingEvent, count_result
from courseinfra.services.events.ports import JobCounters
from courseinfra.services.unit_of_work import UnitOfWork

JOB_NAME = "openedx-events"
OPENEDX_TYPE_PREFIX = "org.openedx."
APPLIED_EVENTS = "applied"
#: Ids of applied events forgotten with each batch at most, once past the retention.
PRUNE_PER_BATCH = 1000
LINKS_PULLED = "links-pulled"
#: Users for whom an event was the echo of courseinfra's own legacy write: no legacy read, no write.
ECHOES = "echoes"
#: The job that keeps what the webhook was posted that is not an Open edX event.
REFUSAL_JOB = "openedx-webhook"
NOT_AN_OPENEDX_EVENT = "not-an-openedx-event"


class MessageReader(abc.ABC):
    """Reads an intake line (a JSON object: an envelope with its event data) into a message."""

    @abc.abstractmethod
    def read(self, line: Mapping[str, Any]) -> OpenedxMessage | Rejection:
        """The message, or why it cannot be read; never raises on bad input."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying messages did: ``links`` acted on, ``echoes`` consumed (ADR 0022)."""

    links: int
    echoes: int = 0


#: Applies messages to the linked user groups; returns how many links it acted on (an int), or that
#: with the echoes consumed (:class:`Applied`). Raises a :class:`DomainError` (a legacy failure) when
#: it could not.
Apply = Callable[[Sequence[OpenedxMessage]], "int | Applied"]


@dataclass
class OpenedxEventsJob:
    uow_factory: Callable[[], UnitOfWork]
    reader: MessageReader
    apply: Apply
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: How long an applied event's id is remembered (a redelivery later than that is applied again,
    #: harmlessly: applies read the legacy state). None: forever.
    retention: timedelta | None = timedelta(days=7)
    name: str = JOB_NAME

    def accepts(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("type")
        return isinstance(kind, str) and kind.startswith(OPENEDX_TYPE_PREFIX)

    def process(self, events: Sequence[IncomingEvent], counters: JobCounters) -> list[EventResult]:
        """The batch's messages applied together (one pull per link touched, however many events name
        it); should that fail, each is applied alone, so that only the events that fail are kept."""
        messages = [self.reader.read(incoming.event) for incoming in events]
        ids = [m.metadata.id for m in messages if isinstance(m, OpenedxMessage)]
        with self.uow_factory().reading() as uow:
            done = uow.openedx_events.applied(ids)
        results: list[EventResult | None] = [None] * len(messages)
        pending: dict[str, tuple[int, OpenedxMessage]] = {}
        for position, message in enumerate(messages):
            if isinstance(message, Rejection):
                results[position] = EventResult.rejected(self.name, message)
            elif message.metadata.id in done or message.metadata.id in pending:
                results[position] = EventResult(
                    self.name, Outcome.SKIPPED, "already-applied", f"event {message.metadata.id}"
                )
            else:
                pending[message.metadata.id] = (position, message)
        for position, result in self._apply(list(pending.values()), counters):
            results[position] = result
        final = [result for result in results if result is not None]
        for result in final:
            count_result(counters, result)
        return final

    def _apply(
        self, batch: list[tuple[int, OpenedxMessage]], counters: JobCounters
    ) -> list[tuple[int, EventResult]]:
        if not batch:
            return []
        if len(batch) == 1:
            return self._apply_alone(batch[0], counters)
        try:
            pulled = self.apply([message for _, message in batch])
        except DomainError:
            return [result for one in batch for result in self._apply_alone(one, counters)]
        self._record([message for _, message in batch], counters, pulled)
        return [(position, EventResult(self.name, Outcome.PROCESSED)) for position, _ in batch]

    def _apply_alone(
        self, one: tuple[int, OpenedxMessage], counters: JobCounters
    ) -> list[tuple[int, EventResult]]:
        position, message = one
        try:
            pulled = self.apply([message])
        except DomainError as error:
            return [(position, EventResult(self.name, Outcome.FAILED, error.code, str(error)))]
        self._record([message], counters, pulled)
        return [(position, EventResult(self.name, Outcome.PROCESSED))]

    def _record(
        self, messages: Sequence[OpenedxMessage], counters: JobCounters, applied: int | Applied
    ) -> None:
        # After the pulls: should this process stop in between, the events come again and their pulls
        # find nothing to change.
        now = self.clock()
        with self.uow_factory() as uow:
            for message in messages:
                uow.openedx_events.record(message.metadata.id, message.metadata.type, now)
            if self.retention is not None:
                # A few at a time with each batch: the table stays as long as the retention, without a
                # maintenance job.
                uow.openedx_events.prune(now - self.retention, limit=PRUNE_PER_BATCH)
            uow.commit()
        done = applied if isinstance(applied, Applied) else Applied(applied)
        counters.inc(APPLIED_EVENTS, len(messages))
        counters.inc(LINKS_PULLED, done.links)
        if done.echoes:
            counters.inc(ECHOES, done.echoes)


@dataclass
class NotAnOpenedxEvent:
    """Takes every event and fails it, ``not-an-openedx-event``: behind the Open edX job in
    :func:`openedx_only`, it gets what that job does not accept (a ``type`` that is not
    ``org.openedx.*``, or none), which is then kept in failed events with the reason. A replay of a
    kept one (``failed replay``) routes it among every job, as ``/v1/events`` would have."""

    name: str = REFUSAL_JOB

    def accepts(self, event: Mapping[str, Any]) -> bool:
        return True

    def process(self, events: Sequence[IncomingEvent], counters: JobCounters) -> list[EventResult]:
        results = [
            EventResult(
                self.name,
                Outcome.FAILED,
                NOT_AN_OPENEDX_EVENT,
                f"{_type_of(incoming.event)}: this intake takes Open edX events only "
                f"(type {OPENEDX_TYPE_PREFIX}*)",
            )
            for incoming in events
        ]
        for result in results:
            count_result(counters, result)
        return results


def _type_of(event: Mapping[str, Any]) -> str:
    if "type" not in event:
        return "the event has no type"
    return f"type {json_text(event['type'])} is not an Open edX event type"


def openedx_only(router: Router) -> Router:
    """A router of the Open edX intake alone: ``router``'s :data:`JOB_NAME` job takes the Open edX
    events, every other event is failed by :class:`NotAnOpenedxEvent` (never routed to another job)."""
    return Router([*(job for job in router.jobs if job.name == JOB_NAME), NotAnOpenedxEvent()])
