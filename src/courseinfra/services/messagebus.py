"""Relays committed outbox messages to the bus, and the handlers that turn them into job events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from courseinfra.domain.events import ContentPublished
from courseinfra.services.ingest import Router, RunCounters, keep_rejected
from courseinfra.services.jobs import IncomingEvent
from courseinfra.services.ports import EventBus, OutboxMessage, UnitOfWork


def relay_outbox(
    uow_factory: Callable[[], UnitOfWork],
    bus: EventBus,
    *,
    batch: int = 100,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Publish every pending outbox message once, oldest first; return how many were relayed.

    A message whose handler raises stays pending with its error and is tried again by the next relay:
    delivery is at least once, so handlers are idempotent.
    """
    relayed = 0
    tried: set[int] = set()
    while True:
        with uow_factory() as uow:
            pending = [
                message for message in uow.outbox.pending(batch + len(tried)) if message.id not in tried
            ]
        if not pending:
            return relayed
        for message in pending:
            tried.add(message.id)
            try:
                bus.publish(message)
            except Exception as error:
                with uow_factory() as uow:
                    uow.outbox.mark_attempt_failed(message.id, f"{type(error).__name__}: {error}")
                    uow.commit()
                continue
            with uow_factory() as uow:
                uow.outbox.mark_relayed(message.id, clock())
                uow.commit()
            relayed += 1


def post_publish_handler(
    router: Router, uow_factory: Callable[[], UnitOfWork]
) -> Callable[[OutboxMessage], None]:
    """Turn a :class:`ContentPublished` message into its post-publish job request and process it; a
    rejection is kept in the failed-events store like one from ingest."""

    def handle(message: OutboxMessage) -> None:
        payload = dict(message.payload)
        payload["occurred_at"] = datetime.fromisoformat(str(payload["occurred_at"]))
        event = ContentPublished(**payload)
        request = event.job_request()
        incoming = IncomingEvent(orjson.dumps(request).decode(), request, f"outbox:{message.id}")
        counters = RunCounters()
        result = router.process([incoming], counters)[0]
        kept = [] if result.outcome == "processed" else [(incoming.payload, incoming.source, result)]
        keep_rejected(kept, counters, uow_factory, datetime.now(UTC))

    return handle
