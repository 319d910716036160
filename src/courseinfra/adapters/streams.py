"""Event streams: where relayed events leave the process (ADR 0015).

On Redis, one stream per event type (``XADD`` with an exact ``MAXLEN``), read by downstream services with
``XREAD``/``XREADGROUP``, the way Sunbird's jobs hand AUDIT telemetry and certificate requests to Kafka
topics. Embedded, a SQLite file beside the store with the same contract, so that a machine without
servers can still hand events to another process (``courseinfra events read``).

An entry holds the message id (``id``), its key (``key``) and the JSON payload (``payload``).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import orjson

if TYPE_CHECKING:
    import redis

from courseinfra.services.events.ports import EventStream, OutboxMessage, StreamEntry

REDIS_STREAM_ID = re.compile(r"\d+(-\d+)?")

SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_entries (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stream_entries_by_type ON stream_entries (event_type, position);
CREATE TABLE IF NOT EXISTS stream_lengths (
    event_type TEXT PRIMARY KEY,
    length INTEGER NOT NULL
) WITHOUT ROWID;
"""

# A file written before ``stream_lengths`` existed has its lengths counted once.
COUNT_LENGTHS = """
INSERT INTO stream_lengths (event_type, length)
SELECT event_type, count(*) FROM stream_entries
WHERE NOT EXISTS (SELECT 1 FROM stream_lengths)
GROUP BY event_type
"""


def _entry(position: str, event_type: str, message_id: int, key: str, payload: str | bytes) -> StreamEntry:
    return StreamEntry(
        position, OutboxMessage(message_id, event_type, key, orjson.loads(payload), attempts=0)
    )


class SqliteEventStream(EventStream):
    """Streams in a SQLite file (WAL), shared by every process of the machine."""

    def __init__(self, path: Path | str, max_length: int) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.max_length = max_length
        self._connection = sqlite3.connect(
            str(path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(SCHEMA)
        self._lock = threading.Lock()
        if self._uncounted():
            with self._lock:
                self._transaction(lambda db: db.execute(COUNT_LENGTHS))

    def _uncounted(self) -> bool:
        """Entries but no lengths: a file from before ``stream_lengths`` (checked by a read, so that
        opening a stream takes no write lock)."""
        db = self._connection
        return (
            db.execute("SELECT 1 FROM stream_lengths LIMIT 1").fetchone() is None
            and db.execute("SELECT 1 FROM stream_entries LIMIT 1").fetchone() is not None
        )

    def append(self, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        rows = [(m.event_type, m.id, m.key, orjson.dumps(m.payload).decode()) for m in messages]
        appended = Counter(m.event_type for m in messages)
        with self._lock:
            self._transaction(lambda db: self._append(db, rows, appended))

    def _append(
        self, db: sqlite3.Connection, rows: list[tuple[str, int, str, str]], appended: Counter[str]
    ) -> None:
        db.executemany(
            "INSERT INTO stream_entries (event_type, message_id, key, payload) VALUES (?, ?, ?, ?)", rows
        )
        # Each stream's length is kept beside it, so trimming deletes the oldest entries by the primary
        # key (work in proportion to the page) instead of counting the stream at every append.
        for event_type, count in sorted(appended.items()):
            (length,) = db.execute(
                "INSERT INTO stream_lengths (event_type, length) VALUES (?, ?) "
                "ON CONFLICT (event_type) DO UPDATE SET length = length + excluded.length RETURNING length",
                (event_type, count),
            ).fetchone()
            excess = length - self.max_length
            if excess > 0:
                db.execute(
                    "DELETE FROM stream_entries WHERE position IN (SELECT position FROM stream_entries "
                    "WHERE event_type = ? ORDER BY position LIMIT ?)",
                    (event_type, excess),
                )
                db.execute(
                    "UPDATE stream_lengths SET length = ? WHERE event_type = ?", (self.max_length, event_type)
                )

    def _transaction(self, work: Callable[[sqlite3.Connection], object]) -> None:
        db = self._connection
        db.execute("BEGIN IMMEDIATE")
        try:
            work(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def read(self, event_type: str, *, after: str | None = None, limit: int = 100) -> list[StreamEntry]:
        if after and not after.isdigit():
            raise ValueError("a position of the embedded stream is a whole number")
        start = int(after) if after else 0
        with self._lock:
            rows = self._connection.execute(
                "SELECT position, message_id, key, payload FROM stream_entries "
                "WHERE event_type = ? AND position > ? ORDER BY position LIMIT ?",
                (event_type, start, limit),
            ).fetchall()
        return [_entry(str(position), event_type, mid, key, payload) for position, mid, key, payload in rows]

    def lengths(self) -> dict[str, int]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT event_type, length FROM stream_lengths ORDER BY event_type"
            ).fetchall()
        return {str(event_type): int(length) for event_type, length in rows}

    def close(self) -> None:
        self._connection.close()


class RedisEventStream(EventStream):
    """Redis streams ``<prefix>:<event type>``; a page is appended in one MULTI/EXEC.

    The event types that have a stream are kept in a set, ``<prefix>.streams`` (outside the streams'
    ``<prefix>:*`` pattern, so that a consumer scanning for streams never meets it), added to by each
    append, so that :meth:`lengths` reads one set and one ``XLEN`` per stream instead of scanning the
    keyspace (the relation cache's keys share it). Streams appended to before the set existed are found
    by one ``SCAN`` the first time a handle reads the lengths and the set is missing."""

    def __init__(self, client: redis.Redis, max_length: int, prefix: str = "courseinfra:events") -> None:
        self.client = client
        self.max_length = max_length
        self.prefix = prefix
        self.index_key = f"{prefix}.streams"
        self._indexed = False

    @classmethod
    def from_url(cls, url: str, max_length: int, prefix: str = "courseinfra:events") -> RedisEventStream:
        import redis  # loaded only where Redis is configured

        return cls(redis.Redis.from_url(url, socket_connect_timeout=5), max_length, prefix)

    def stream_key(self, event_type: str) -> str:
        """The Redis key of an event type's stream (what a consumer reads with XREADGROUP)."""
        return f"{self.prefix}:{event_type}"

    def append(self, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        pipeline = self.client.pipeline(transaction=True)
        for message in messages:
            pipeline.xadd(
                self.stream_key(message.event_type),
                {"id": message.id, "key": message.key, "payload": orjson.dumps(message.payload)},
                maxlen=self.max_length,
                approximate=False,
            )
        pipeline.sadd(self.index_key, *sorted({message.event_type for message in messages}))
        pipeline.execute()

    def read(self, event_type: str, *, after: str | None = None, limit: int = 100) -> list[StreamEntry]:
        if after and not REDIS_STREAM_ID.fullmatch(after):
            raise ValueError("a Redis stream position is <milliseconds>-<sequence>")
        # The client is built without decode_responses: ids and fields come back as bytes.
        found = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            self.client.xrange(self.stream_key(event_type), min=f"({after}" if after else "-", count=limit),
        )
        return [
            _entry(_text(position), event_type, int(fields[b"id"]), _text(fields[b"key"]), fields[b"payload"])
            for position, fields in found
        ]

    def lengths(self) -> dict[str, int]:
        if not self._indexed:
            self._index_older_streams()
        event_types = sorted(_text(name) for name in cast(set[bytes], self.client.smembers(self.index_key)))
        pipeline = self.client.pipeline(transaction=False)
        for event_type in event_types:
            pipeline.xlen(self.stream_key(event_type))
        return dict(zip(event_types, (int(n) for n in pipeline.execute()), strict=True))

    def _index_older_streams(self) -> None:
        """Add the streams of the prefix to the set, when it is missing (streams written before it)."""
        if not self.client.exists(self.index_key):
            start = len(self.prefix) + 1
            found = [
                _text(key)[start:]
                for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000, _type="stream")
            ]
            if found:
                self.client.sadd(self.index_key, *found)
        self._indexed = True

    def close(self) -> None:
        self.client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
