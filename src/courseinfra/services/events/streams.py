"""Reading the event streams relayed events leave by (ADR 0015): for operators and simple consumers."""

from __future__ import annotations

from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.services.events.ports import EventStream, StreamEntry


class NoEventStream(DomainError):
    code = "no-event-stream"
    kind = ErrorKind.NOT_FOUND


class InvalidStreamPosition(DomainError):
    code = "invalid-stream-position"
    kind = ErrorKind.MALFORMED


def read_stream(
    stream: EventStream | None, event_type: str, *, after: str | None = None, limit: int = 100
) -> list[StreamEntry]:
    """Entries of the ``event_type`` stream after the position ``after``, oldest first."""
    if stream is None:
        raise NoEventStream(
            "no event stream is configured: set COURSEINFRA_EVENT_STREAM to embedded or redis"
        )
    try:
        return stream.read(event_type, after=after, limit=limit)
    except ValueError as error:
        raise InvalidStreamPosition(f"position {after!r}: {error}") from None
