"""One contract for every event stream: the embedded SQLite file and Redis streams."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from courseinfra.adapters.streams import RedisEventStream, SqliteEventStream
from courseinfra.services.events.ports import EventStream, OutboxMessage, StreamEntry
from tests.support.servers import clear_redis

AUDIT = "courseinfra.learning.audit.emitted.v1"
CERTIFICATE = "courseinfra.learning.certificate.requested.v1"
MAX_LENGTH = 5


def message(number: int, event_type: str = AUDIT) -> OutboxMessage:
    payload = {"user_id": f"u{number}", "telemetry": {"mid": f"AUDIT.{number}", "edata": {"type": "start"}}}
    return OutboxMessage(number, event_type, f"u{number}", payload, attempts=0)


Seen = list[tuple[int, str, str, dict[str, Any]]]


def seen(entries: list[StreamEntry]) -> Seen:
    return [(e.message.id, e.message.event_type, e.message.key, dict(e.message.payload)) for e in entries]


class EventStreamContract:
    """Subclasses provide ``stream`` (keeping ``MAX_LENGTH`` entries) and ``reopen`` (another handle on
    the same streams, as another process would have)."""

    def test_messages_come_back_in_order_with_their_fields(self, stream: EventStream) -> None:
        stream.append([message(1), message(2)])
        stream.append([message(3)])
        entries = stream.read(AUDIT)
        assert seen(entries) == seen_of([message(1), message(2), message(3)])
        positions = [entry.position for entry in entries]
        assert len(set(positions)) == 3

    def test_each_event_type_has_its_own_stream(self, stream: EventStream) -> None:
        stream.append([message(1), message(2, CERTIFICATE), message(3)])
        assert [e.message.id for e in stream.read(AUDIT)] == [1, 3]
        assert [e.message.id for e in stream.read(CERTIFICATE)] == [2]
        assert stream.read("courseinfra.nothing.v1") == []

    def test_pages_after_a_position_cover_every_entry_once(self, stream: EventStream) -> None:
        stream.append([message(n) for n in range(1, 5)])
        first = stream.read(AUDIT, limit=3)
        rest = stream.read(AUDIT, after=first[-1].position, limit=3)
        assert [e.message.id for e in first] == [1, 2, 3]
        assert [e.message.id for e in rest] == [4]
        assert stream.read(AUDIT, after=rest[-1].position) == []

    def test_only_the_newest_entries_are_kept(self, stream: EventStream) -> None:
        stream.append([message(n) for n in range(1, 4)])
        stream.append([message(n) for n in range(4, 8)])
        assert [e.message.id for e in stream.read(AUDIT, limit=100)] == [3, 4, 5, 6, 7]

    def test_an_empty_append_writes_nothing(self, stream: EventStream) -> None:
        stream.append([])
        assert stream.read(AUDIT) == []

    def test_a_position_of_another_shape_is_refused(self, stream: EventStream) -> None:
        with pytest.raises(ValueError, match="position"):
            stream.read(AUDIT, after="not-a-position")

    def test_another_handle_reads_what_one_appended(
        self, stream: EventStream, reopen: Callable[[], EventStream]
    ) -> None:
        stream.append([message(1)])
        other = reopen()
        try:
            assert [e.message.id for e in other.read(AUDIT)] == [1]
            other.append([message(2)])
        finally:
            other.close()
        assert [e.message.id for e in stream.read(AUDIT)] == [1, 2]

    def test_handles_appending_in_turn_keep_the_newest_entries(
        self, stream: EventStream, reopen: Callable[[], EventStream]
    ) -> None:
        other = reopen()
        try:
            for first in range(1, 13, 3):
                writer = stream if first % 2 else other
                writer.append([message(first), message(first + 1, CERTIFICATE), message(first + 2)])
        finally:
            other.close()
        assert [e.message.id for e in stream.read(AUDIT)] == [6, 7, 9, 10, 12]
        assert [e.message.id for e in stream.read(CERTIFICATE)] == [2, 5, 8, 11]

    def test_lengths_count_each_stream_as_trimmed(self, stream: EventStream) -> None:
        assert stream.lengths() == {}
        stream.append([message(1), message(2, CERTIFICATE), message(3)])
        assert stream.lengths() == {AUDIT: 2, CERTIFICATE: 1}
        stream.append([message(n) for n in range(4, 10)])
        assert stream.lengths() == {AUDIT: MAX_LENGTH, CERTIFICATE: 1}
        assert len(stream.read(AUDIT)) == MAX_LENGTH

    def test_another_handle_reads_the_lengths_one_appended(
        self, stream: EventStream, reopen: Callable[[], EventStream]
    ) -> None:
        other = reopen()
        try:
            assert other.lengths() == {}
            stream.append([message(1, CERTIFICATE)])
            other.append([message(2, CERTIFICATE), message(3)])
            assert other.lengths() == stream.lengths() == {AUDIT: 1, CERTIFICATE: 2}
        finally:
            other.close()


def seen_of(messages: list[OutboxMessage]) -> Seen:
    return [(m.id, m.event_type, m.key, dict(m.payload)) for m in messages]


class TestSqliteEventStream(EventStreamContract):
    @pytest.fixture
    def stream(self, tmp_path: Path) -> Iterator[EventStream]:
        stream = SqliteEventStream(tmp_path / "events.sqlite3", MAX_LENGTH)
        yield stream
        stream.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Callable[[], EventStream]:
        return lambda: SqliteEventStream(tmp_path / "events.sqlite3", MAX_LENGTH)

    def test_a_file_from_before_the_stream_lengths_is_trimmed_by_its_real_length(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "older.sqlite3"
        SqliteEventStream(path, MAX_LENGTH).close()
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE stream_lengths")
            db.executemany(
                "INSERT INTO stream_entries (event_type, message_id, key, payload) VALUES (?, ?, ?, '{}')",
                [(AUDIT, n, f"u{n}") for n in range(1, 5)],
            )
        db.close()
        stream = SqliteEventStream(path, MAX_LENGTH)
        try:
            stream.append([message(5), message(6)])
            assert [e.message.id for e in stream.read(AUDIT)] == [2, 3, 4, 5, 6]
        finally:
            stream.close()


class TestRedisEventStream(EventStreamContract):
    @pytest.fixture
    def stream(self, redis_client: redis.Redis) -> Iterator[EventStream]:
        clear_redis(redis_client)
        url = self.url(redis_client)
        stream = RedisEventStream.from_url(url, MAX_LENGTH)
        yield stream
        stream.close()
        clear_redis(redis_client)

    @pytest.fixture
    def reopen(self, redis_client: redis.Redis) -> Callable[[], EventStream]:
        return lambda: RedisEventStream.from_url(self.url(redis_client), MAX_LENGTH)

    @staticmethod
    def url(client: redis.Redis) -> str:
        kwargs = client.connection_pool.connection_kwargs
        return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"

    def test_streams_written_before_their_index_are_measured(
        self, stream: EventStream, redis_client: redis.Redis
    ) -> None:
        for number in range(3):
            redis_client.xadd(f"courseinfra:events:{AUDIT}", {"id": number, "key": "u", "payload": "{}"})
        redis_client.set("courseinfra:events:not-a-stream", "1")
        assert stream.lengths() == {AUDIT: 3}
        stream.append([message(4, CERTIFICATE)])
        assert stream.lengths() == {AUDIT: 3, CERTIFICATE: 1}

    def test_streams_are_native_redis_streams(self, stream: EventStream, redis_client: redis.Redis) -> None:
        stream.append([message(1)])
        key = "courseinfra:events:" + AUDIT
        assert redis_client.type(key) == "stream"
        [(_, fields)] = redis_client.xrange(key)
        assert (fields["id"], fields["key"]) == ("1", "u1")
