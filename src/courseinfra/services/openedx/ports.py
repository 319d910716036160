"""The ports of the Open edX intake: the event bus as a consumer in a consumer group sees it.

Open edX's Redis event bus (edx-event-bus-redis) writes one stream per topic, named
``<EVENT_BUS_TOPIC_PREFIX>-<topic>``; each entry's fields are the envelope's metadata (``type``, ``id``,
``source``, ``time``, ``minorversion``, ``sourcehost``, ``sourcelib``) and ``event_data`` (schemaless
Avro). This port reads entries and acknowledges them; what they mean is the wire adapter's business.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


class BusUnavailable(Exception):
    """The event bus cannot be reached (its server is down or refuses the connection)."""


@dataclass(frozen=True, slots=True)
class BusEntry:
    """One stream entry: its stream, its id in that stream, and its fields as bytes."""

    stream: str
    entry_id: str
    fields: Mapping[str, bytes]


class OpenedxBus(abc.ABC):
    """Streams read through one consumer group (``group``), by one named consumer of it (``consumer``).

    Delivery is at least once: an entry stays pending for its consumer until :meth:`ack`; a consumer
    that stopped before acknowledging gets its pending entries again from :meth:`read`, and another
    consumer can take them over with :meth:`claim_idle`. Applying an entry twice must therefore be
    harmless (the intake records each event id it applied).
    """

    group: str
    consumer: str

    @abc.abstractmethod
    def read(self, streams: Sequence[str], *, count: int = 100, block_ms: int = 0) -> list[BusEntry]:
        """Up to ``count`` entries for this consumer, in stream order per stream: first those delivered
        to it before and not acknowledged, then new ones (waiting up to ``block_ms`` for some when
        there are none; 0: no wait). A stream that does not exist yet is created empty, with the group
        reading it from its start."""

    @abc.abstractmethod
    def ack(self, entries: Sequence[BusEntry]) -> None:
        """Acknowledge entries: they are not delivered to this group again."""

    @abc.abstractmethod
    def claim_idle(self, streams: Sequence[str], *, min_idle_ms: int, count: int = 100) -> list[BusEntry]:
        """Take over up to ``count`` entries pending with any consumer of the group for at least
        ``min_idle_ms`` (a consumer that died), delivering them to this consumer."""

    @abc.abstractmethod
    def pending(self, stream: str) -> int:
        """How many entries of ``stream`` are delivered to the group and not acknowledged."""

    @abc.abstractmethod
    def send(self, stream: str, fields: Mapping[str, bytes | str]) -> str:
        """Append an entry (what Open edX's producer does; for a test double of Open edX and for tools);
        return its id."""

    @abc.abstractmethod
    def close(self) -> None: ...


class AppliedEvents(abc.ABC):
    """The Open edX events applied, by their envelope ``id``: what makes a redelivery or a replay of one
    a no-op that calls no legacy system."""

    @abc.abstractmethod
    def applied(self, event_ids: Sequence[str]) -> set[str]:
        """Those of ``event_ids`` already applied."""

    @abc.abstractmethod
    def record(self, event_id: str, event_type: str, at: datetime) -> bool:
        """Record an event applied; False (and nothing written) when it was already."""

    @abc.abstractmethod
    def prune(self, before: datetime, limit: int = 10_000) -> int:
        """Forget up to ``limit`` events applied before ``before``; return how many."""
