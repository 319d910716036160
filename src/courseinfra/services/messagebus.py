"""Relays committed outbox messages to the bus, and the handlers that turn them into job events."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

import orjson

from courseinfra.domain.events import AuditEventEmitted, ContentPublished
from courseinfra.services.events.ingest import Router, RunCounters, keep_rejected
from courseinfra.services.events.jobs import IncomingEvent
from courseinfra.services.events.ports import EventBus, EventStream, OutboxMessage
from courseinfra.services.transactions import retrying
from courseinfra.services.unit_of_work import Locks, UnitOfWork

#: The relays' names: of their locks, and of the AUDIT relay's cursor.
OUTBOX_RELAY = "outbox"
AUDIT_RELAY = "audit"
#: Outbox messages read at a time. Small: a message can be large (a micro-batch's ``ProgressUpdated``
#: names every learner of the batch), and a backfill leaves one per micro-batch to relay.
OUTBOX_PAGE = 50

log = logging.getLogger(__name__)


class Publication:
    """Publication on commit: what a committed unit of work recorded is relayed as soon as its block has
    closed, by the thread that committed it (``relay``, set once the application is wired; None: nothing
    is relayed on commit, as in ``ingest --workers`` processes, whose parent relays).

    The relay's own commits, and those of the handlers it runs (a group refresh after an enrolment),
    publish nothing themselves: the relay that runs them goes on until nothing is pending. A relay that
    fails after the commit does not undo it: the failure is logged and the next relay delivers.
    """

    def __init__(self, relay: Callable[[], int] | None = None) -> None:
        self.relay = relay
        self._thread = threading.local()

    @contextmanager
    def relaying(self) -> Iterator[bool]:
        """Mark this thread as relaying; yields False when it already is (the caller then does nothing)."""
        if getattr(self._thread, "relaying", False):
            yield False
            return
        self._thread.relaying = True
        try:
            yield True
        finally:
            self._thread.relaying = False

    def committed(self) -> None:
        """Called by a unit of work after a commit that wrote events (its ``on_publish``)."""
        if self.relay is None or getattr(self._thread, "relaying", False):
            return
        try:
            self.relay()
        except Exception:
            log.exception("relaying after a commit failed; the next relay delivers what is pending")


def relay_outbox(
    uow_factory: Callable[[], UnitOfWork],
    bus: EventBus,
    *,
    locks: Locks,
    stream: EventStream | None = None,
    batch: int = OUTBOX_PAGE,
    retention: timedelta | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Publish every pending outbox message once, oldest first, ``batch`` at a time; return how many were
    relayed. Messages relayed longer ago than ``retention`` are deleted afterwards (None: kept forever).

    A page of messages is published, appended to ``stream`` (where there is one), then marked relayed in
    one transaction. A message whose handler raises stays pending with its error and is tried again by
    the next relay: delivery is at least once (a crash between publishing and marking delivers the page
    again), so handlers are idempotent. When the stream refuses the page, none of it is marked: the
    relay stops with the error on each message, and the next relay starts again from there. One relay
    runs at a time across processes (``locks``): another waits, then relays what is left, so that two
    processes never deliver the same page.
    """
    with locks.hold(OUTBOX_RELAY):
        relayed = 0
        last_id = 0
        while True:
            with uow_factory().reading() as uow:
                pending = uow.outbox.pending(batch, after_id=last_id)
            if not pending:
                if retention is not None:
                    prune_outbox(uow_factory, clock() - retention)
                return relayed
            last_id = pending[-1].id
            done: list[int] = []
            errors: list[tuple[int, str]] = []
            for message in pending:
                try:
                    bus.publish(message)
                except Exception as error:
                    errors.append((message.id, f"{type(error).__name__}: {error}"))
                else:
                    done.append(message.id)
            delivered = set(done)
            stream_error = _append(stream, [message for message in pending if message.id in delivered])
            if stream_error is not None:
                errors += [(message_id, stream_error) for message_id in done]
                done = []
            retrying(partial(_mark_outbox, uow_factory, done, errors, clock()))
            relayed += len(done)
            if stream_error is not None:
                return relayed


def prune_outbox(uow_factory: Callable[[], UnitOfWork], before: datetime, page: int = 10_000) -> int:
    """Delete the messages relayed before ``before``, a bounded page per transaction; return how many."""
    pruned = 0
    while True:
        with uow_factory() as uow:
            deleted = uow.outbox.prune_relayed(before, page)
            uow.commit()
        pruned += deleted
        if deleted < page:
            return pruned


def _mark_outbox(
    uow_factory: Callable[[], UnitOfWork], done: list[int], errors: list[tuple[int, str]], at: datetime
) -> None:
    with uow_factory() as uow:
        uow.outbox.mark_relayed(done, at)
        for message_id, error_text in errors:
            uow.outbox.mark_attempt_failed(message_id, error_text)
        uow.commit()


def relay_audit_log(
    uow_factory: Callable[[], UnitOfWork],
    bus: EventBus,
    *,
    locks: Locks,
    stream: EventStream | None = None,
    batch: int = 1000,
    retention: timedelta | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Publish the AUDIT log's entries after the relay cursor, in log order, as
    :class:`AuditEventEmitted` messages (the message id is the entry id); return how many. Entries
    relayed and older than ``retention`` are deleted afterwards (None: kept forever).

    The entries of at least ``batch`` events (whole appends) are published, appended to ``stream``
    (where there is one), then the cursor moves past them in one transaction: delivery is at least once
    (a crash in between delivers them again, with the same ``mid``s). A message whose handler raises
    stops the relay there, keeping the order: the cursor stays before it with the error, and the next
    relay starts again from that message. When the stream refuses the entries, the cursor stays where it
    was, with the error. One relay at a time across processes, as in :func:`relay_outbox`.
    """
    with locks.hold(AUDIT_RELAY):
        relayed = 0
        while True:
            with uow_factory().reading() as uow:
                start = position = uow.cursors.get(AUDIT_RELAY).position
                entries = uow.audits.read_after(start, batch)
            if not entries:
                if retention is not None:
                    prune_audit_log(uow_factory, start, clock() - retention)
                return relayed
            failure: str | None = None
            published: list[OutboxMessage] = []
            times: dict[datetime, str] = {}
            for entry in entries:
                occurred_at = times.get(entry.emitted_at) or times.setdefault(
                    entry.emitted_at, entry.emitted_at.isoformat()
                )
                message = OutboxMessage(
                    entry.id,
                    AuditEventEmitted.event_type,
                    entry.user_id,
                    AuditEventEmitted.payload_of(entry.user_id, entry.telemetry, occurred_at),
                    attempts=0,
                )
                try:
                    bus.publish(message)
                except Exception as error:
                    failure = f"AUDIT entry {entry.id}: {type(error).__name__}: {error}"
                    break
                published.append(message)
            stream_error = _append(stream, published)
            if stream_error is not None:
                failure = stream_error
            elif published:
                position = published[-1].id
                relayed += len(published)
            moved = position if position != start else None
            retrying(partial(_move_audit_cursor, uow_factory, moved, failure, clock()))
            if failure is not None:
                return relayed


def prune_audit_log(
    uow_factory: Callable[[], UnitOfWork], through_id: int, before: datetime, page: int = 100
) -> int:
    """Delete the AUDIT entries relayed (at or before ``through_id``) and emitted before ``before``, a
    bounded number of appends per transaction; return how many entries."""
    pruned = 0
    while True:
        with uow_factory() as uow:
            deleted = uow.audits.prune(through_id=through_id, before=before, limit=page)
            uow.commit()
        pruned += deleted
        if not deleted:
            return pruned


def _move_audit_cursor(
    uow_factory: Callable[[], UnitOfWork], position: int | None, failure: str | None, at: datetime
) -> None:
    with uow_factory() as uow:
        if position is not None:
            uow.cursors.advance(AUDIT_RELAY, position, at)
        if failure is not None:
            uow.cursors.record_failure(AUDIT_RELAY, failure, at)
        uow.commit()


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


def _append(stream: EventStream | None, messages: list[OutboxMessage]) -> str | None:
    """Append ``messages`` to ``stream``; return the error, if it refused them."""
    if stream is None or not messages:
        return None
    try:
        stream.append(messages)
    except Exception as error:
        return f"event stream: {type(error).__name__}: {error}"
    return None
