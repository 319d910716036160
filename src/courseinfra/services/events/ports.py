"""The ports of the event pipeline: the outbox, the relay's cursors, the bus, the event streams and the
jobs' counters."""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from courseinfra.domain.events import Event


class CounterStore(abc.ABC):
    """Cumulative counters per job, added to in the same transaction as the work they count."""

    @abc.abstractmethod
    def add(self, job: str, counts: Mapping[str, int]) -> None:
        """Add ``counts`` to the job's counters, in counter-name order (so that writers adding jobs in
        name order too never wait for each other in a cycle)."""

    @abc.abstractmethod
    def all(self) -> dict[str, dict[str, int]]: ...

    @abc.abstractmethod
    def snapshot(self, bucket: datetime, at: datetime) -> int:
        """Keep the value of every counter at ``at`` as the sample of ``bucket`` (ADR 0025), unless the
        bucket has one already (another process took it): so at most one sample per bucket, whoever
        takes it. Return how many counters were kept (0: the bucket was taken)."""

    @abc.abstractmethod
    def samples(self, since: datetime) -> list[CounterSample]:
        """The samples of the buckets from ``since`` on, and of the last bucket before it (the start of
        the first difference), by bucket then job and counter."""

    @abc.abstractmethod
    def sample_buckets(self, since: datetime) -> list[datetime]:
        """The buckets that have a sample from ``since`` on, and the last one before it, in order: what
        :meth:`samples` would read, without their rows (a chart picks some, ADR 0028)."""

    @abc.abstractmethod
    def samples_at(self, buckets: Collection[datetime], counters: Collection[str]) -> list[CounterSample]:
        """The samples of ``buckets`` for the ``counters`` named (every job's), by bucket then job and
        counter."""

    @abc.abstractmethod
    def prune_samples(self, before: datetime) -> int:
        """Forget the samples of the buckets before ``before``; return how many rows."""


@dataclass(frozen=True, slots=True)
class CounterSample:
    """A counter's cumulative value as one snapshot kept it: ``bucket`` names the snapshot (the start of
    its interval), ``at`` is when it was read."""

    bucket: datetime
    at: datetime
    job: str
    counter: str
    value: int


@dataclass(frozen=True, slots=True)
class Backlog:
    """What a relay has not delivered yet: how many messages (or AUDIT entries), when the oldest was
    committed (None: nothing pending), and the last error of the next one, if its delivery failed."""

    pending: int
    oldest: datetime | None = None
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    event_type: str
    key: str
    payload: Mapping[str, Any]
    attempts: int


class Outbox(abc.ABC):
    """Events committed with the state change that caused them, relayed to the bus after commit."""

    @abc.abstractmethod
    def add(self, events: Sequence[Event], at: datetime) -> None: ...

    @abc.abstractmethod
    def pending(self, limit: int = 100, after_id: int = 0) -> list[OutboxMessage]:
        """Unrelayed messages with an id above ``after_id``, oldest first."""

    @abc.abstractmethod
    def backlog(self) -> Backlog:
        """How many messages are pending, the commit time of the oldest, and its attempts and last
        error."""

    @abc.abstractmethod
    def mark_relayed(self, message_ids: Sequence[int], at: datetime) -> None: ...

    @abc.abstractmethod
    def mark_attempt_failed(self, message_id: int, error: str) -> None: ...

    @abc.abstractmethod
    def prune_relayed(self, before: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` messages relayed before ``before`` (never a pending one); return how
        many."""


@dataclass(frozen=True, slots=True)
class RelayCursor:
    """How far a relay has delivered an ordered stream, and its last failure if the next entry failed."""

    name: str
    position: int
    attempts: int = 0
    last_error: str | None = None
    updated_at: datetime | None = None


class RelayCursors(abc.ABC):
    """Positions of the relays of ordered streams (the AUDIT log), one row per relay."""

    @abc.abstractmethod
    def get(self, name: str) -> RelayCursor:
        """The cursor ``name``; position 0 when it was never moved."""

    @abc.abstractmethod
    def advance(self, name: str, position: int, at: datetime) -> None:
        """Move ``name`` to ``position`` and clear its failure."""

    @abc.abstractmethod
    def record_failure(self, name: str, error: str, at: datetime) -> None:
        """Keep the error of the entry after the cursor's position, and count the attempt."""


Handler = Callable[[OutboxMessage], None]


class EventBus(abc.ABC):
    """Delivers relayed outbox messages to the handlers subscribed to their event type."""

    @abc.abstractmethod
    def subscribe(self, event_type: str, handler: Handler) -> None: ...

    @abc.abstractmethod
    def publish(self, message: OutboxMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry of an event stream: its position (opaque, increasing within the stream) and the
    message."""

    position: str
    message: OutboxMessage


class EventStream(abc.ABC):
    """Where relayed events leave the process for downstream consumers (certificate issuing, the
    telemetry pipeline, ...): one stream per event type, in relay order.

    ``append`` is all or nothing. A relay appends a page of messages before it moves its cursor or marks
    them relayed, so delivery is at least once: after a crash in between, the page is appended again
    with the same message ids (the outbox id, or the AUDIT entry id with the telemetry's ``mid``), by
    which consumers drop repeats. Each stream keeps its newest ``max_length`` entries.
    """

    @abc.abstractmethod
    def append(self, messages: Sequence[OutboxMessage]) -> None: ...

    @abc.abstractmethod
    def read(self, event_type: str, *, after: str | None = None, limit: int = 100) -> list[StreamEntry]:
        """Entries of one stream, oldest first, after the position ``after`` (from the first kept entry
        when None)."""

    @abc.abstractmethod
    def lengths(self) -> dict[str, int]:
        """How many entries each stream keeps now, by event type (every stream appended to, with 0 for
        one emptied since); for operators and the metrics, so cheap enough to call at every scrape."""

    @abc.abstractmethod
    def close(self) -> None: ...


@dataclass
class JobCounters:
    """Counts of one run of a job; added to the cumulative :class:`CounterStore`."""

    counts: dict[str, int] = field(default_factory=dict)
    #: The job added these counts to the store in its own transaction: the caller adds them no more.
    stored: bool = False

    def inc(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self.counts.items())
