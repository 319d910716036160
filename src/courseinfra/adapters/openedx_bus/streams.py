"""The Open edX event bus read through a consumer group: on Redis Streams (as edx-event-bus-redis writes
it), and embedded, a SQLite file with the same contract for a machine without servers and for tests."""

from __future__ import annotations

import base64
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson

if TYPE_CHECKING:
    import redis

from courseinfra.services.openedx.ports import BusEntry, BusUnavailable, OpenedxBus

T = TypeVar("T")


def _reachable(call: Callable[..., T]) -> Callable[..., T]:
    """A Redis call whose connection failure is :class:`BusUnavailable` (a clear error for the caller,
    not the client library's)."""

    @functools.wraps(call)
    def checked(*args: Any, **kwargs: Any) -> T:
        import redis

        try:
            return call(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise BusUnavailable(f"the Open edX event bus (Redis) cannot be reached: {error}") from error

    return checked


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisOpenedxBus(OpenedxBus):
    """Redis Streams through a consumer group (XREADGROUP, XACK, XAUTOCLAIM)."""

    def __init__(self, client: redis.Redis, group: str, consumer: str) -> None:
        self.client = client
        self.group = group
        self.consumer = consumer
        self._grouped: set[str] = set()

    @classmethod
    def from_url(cls, url: str, group: str, consumer: str) -> RedisOpenedxBus:
        import redis  # loaded only where the Redis bus is configured

        return cls(redis.Redis.from_url(url, socket_connect_timeout=5), group, consumer)

    def _ensure_group(self, streams: Sequence[str]) -> None:
        import redis

        for stream in streams:
            if stream in self._grouped:
                continue
            try:
                # From the start of what the stream holds: applying is idempotent, and Open edX trims
                # its streams, so this is a bounded backlog.
                self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
            self._grouped.add(stream)

    def _entries(self, found: Any) -> list[BusEntry]:
        entries = []
        for stream, items in found or ():
            for entry_id, fields in items:
                if fields is None:  # an entry trimmed away while pending
                    continue
                entries.append(
                    BusEntry(_text(stream), _text(entry_id), {_text(k): _bytes(v) for k, v in fields.items()})
                )
        return entries

    @_reachable
    def read(self, streams: Sequence[str], *, count: int = 100, block_ms: int = 0) -> list[BusEntry]:
        self._ensure_group(streams)
        own = self._entries(
            self.client.xreadgroup(self.group, self.consumer, dict.fromkeys(streams, "0"), count=count)
        )
        if own:
            return own
        return self._entries(
            self.client.xreadgroup(
                self.group, self.consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms or None
            )
        )

    @_reachable
    def ack(self, entries: Sequence[BusEntry]) -> None:
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        for stream, ids in by_stream.items():
            self.client.xack(stream, self.group, *ids)

    @_reachable
    def claim_idle(self, streams: Sequence[str], *, min_idle_ms: int, count: int = 100) -> list[BusEntry]:
        self._ensure_group(streams)
        claimed: list[BusEntry] = []
        for stream in streams:
            reply: Any = self.client.xautoclaim(
                stream, self.group, self.consumer, min_idle_ms, "0-0", count=count
            )
            claimed += self._entries([(stream, reply[1])])
        return claimed

    @_reachable
    def pending(self, stream: str) -> int:
        self._ensure_group([stream])
        summary: Any = self.client.xpending(stream, self.group)
        return int(summary["pending"])

    @_reachable
    def send(self, stream: str, fields: Mapping[str, bytes | str]) -> str:
        entry: dict[bytes | str, bytes | str] = dict(fields.items())
        return _text(cast(bytes, self.client.xadd(stream, entry)))  # type: ignore[arg-type]

    def close(self) -> None:
        self.client.close()


SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_entries (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    fields BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_entries_by_stream ON bus_entries (stream, position);
CREATE TABLE IF NOT EXISTS bus_groups (
    stream TEXT NOT NULL,
    grp TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    PRIMARY KEY (stream, grp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_pending (
    stream TEXT NOT NULL,
    grp TEXT NOT NULL,
    position INTEGER NOT NULL,
    consumer TEXT NOT NULL,
    delivered_at REAL NOT NULL,
    PRIMARY KEY (stream, grp, position)
) WITHOUT ROWID;
"""


def _encode_fields(fields: Mapping[str, bytes | str]) -> bytes:
    return orjson.dumps({name: base64.b64encode(_bytes(value)).decode() for name, value in fields.items()})


def _decode_fields(blob: bytes) -> dict[str, bytes]:
    return {name: base64.b64decode(value) for name, value in orjson.loads(blob).items()}


class SqliteOpenedxBus(OpenedxBus):
    """Streams and consumer groups in a SQLite file (WAL), shared by every process of the machine.

    An entry id is ``<position>-0``, shaped like a Redis stream id."""

    def __init__(
        self, path: Path | str, group: str, consumer: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.group = group
        self.consumer = consumer
        self.clock = clock
        self._connection = sqlite3.connect(
            str(path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(SCHEMA)
        self._lock = threading.Lock()

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            db = self._connection
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return result

    @staticmethod
    def _entry(stream: str, position: int, blob: bytes) -> BusEntry:
        return BusEntry(stream, f"{position}-0", _decode_fields(blob))

    def _ensure_group(self, db: sqlite3.Connection, stream: str) -> int:
        db.execute(
            "INSERT INTO bus_groups (stream, grp, delivered) VALUES (?, ?, 0) ON CONFLICT DO NOTHING",
            (stream, self.group),
        )
        (delivered,) = db.execute(
            "SELECT delivered FROM bus_groups WHERE stream = ? AND grp = ?", (stream, self.group)
        ).fetchone()
        return int(delivered)

    def read(self, streams: Sequence[str], *, count: int = 100, block_ms: int = 0) -> list[BusEntry]:
        deadline = time.monotonic() + block_ms / 1000
        while True:
            found = self._transaction(lambda db: self._read(db, streams, count))
            if found or time.monotonic() >= deadline:
                return cast(list[BusEntry], found)
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _read(self, db: sqlite3.Connection, streams: Sequence[str], count: int) -> list[BusEntry]:
        own: list[BusEntry] = []
        for stream in streams:
            self._ensure_group(db, stream)
            own += [
                self._entry(stream, position, blob)
                for position, blob in db.execute(
                    "SELECT e.position, e.fields FROM bus_pending AS p JOIN bus_entries AS e "
                    "ON e.position = p.position WHERE p.stream = ? AND p.grp = ? AND p.consumer = ? "
                    "ORDER BY p.position LIMIT ?",
                    (stream, self.group, self.consumer, count - len(own)),
                )
            ]
            if len(own) >= count:
                return own
        if own:
            return own
        fresh: list[BusEntry] = []
        now = self.clock()
        for stream in streams:
            delivered = self._ensure_group(db, stream)
            rows = db.execute(
                "SELECT position, fields FROM bus_entries WHERE stream = ? AND position > ? "
                "ORDER BY position LIMIT ?",
                (stream, delivered, count - len(fresh)),
            ).fetchall()
            if not rows:
                continue
            db.executemany(
                "INSERT INTO bus_pending (stream, grp, position, consumer, delivered_at) VALUES (?, ?, ?, ?, ?)",
                [(stream, self.group, position, self.consumer, now) for position, _ in rows],
            )
            db.execute(
                "UPDATE bus_groups SET delivered = ? WHERE stream = ? AND grp = ?",
                (rows[-1][0], stream, self.group),
            )
            fresh += [self._entry(stream, position, blob) for position, blob in rows]
            if len(fresh) >= count:
                break
        return fresh

    def ack(self, entries: Sequence[BusEntry]) -> None:
        rows = [(e.stream, self.group, int(e.entry_id.split("-")[0])) for e in entries]
        self._transaction(
            lambda db: db.executemany(
                "DELETE FROM bus_pending WHERE stream = ? AND grp = ? AND position = ?", rows
            )
        )

    def claim_idle(self, streams: Sequence[str], *, min_idle_ms: int, count: int = 100) -> list[BusEntry]:
        def claim(db: sqlite3.Connection) -> list[BusEntry]:
            now = self.clock()
            claimed: list[BusEntry] = []
            for stream in streams:
                self._ensure_group(db, stream)
                rows = db.execute(
                    "SELECT e.position, e.fields FROM bus_pending AS p JOIN bus_entries AS e "
                    "ON e.position = p.position WHERE p.stream = ? AND p.grp = ? AND p.delivered_at <= ? "
                    "ORDER BY p.position LIMIT ?",
                    (stream, self.group, now - min_idle_ms / 1000, count - len(claimed)),
                ).fetchall()
                db.executemany(
                    "UPDATE bus_pending SET consumer = ?, delivered_at = ? "
                    "WHERE stream = ? AND grp = ? AND position = ?",
                    [(self.consumer, now, stream, self.group, position) for position, _ in rows],
                )
                claimed += [self._entry(stream, position, blob) for position, blob in rows]
            return claimed

        return cast(list[BusEntry], self._transaction(claim))

    def pending(self, stream: str) -> int:
        with self._lock:
            (count,) = self._connection.execute(
                "SELECT count(*) FROM bus_pending WHERE stream = ? AND grp = ?", (stream, self.group)
            ).fetchone()
        return int(count)

    def send(self, stream: str, fields: Mapping[str, bytes | str]) -> str:
        blob = _encode_fields(fields)

        def append(db: sqlite3.Connection) -> int:
            cursor = db.execute("INSERT INTO bus_entries (stream, fields) VALUES (?, ?)", (stream, blob))
            return int(cursor.lastrowid or 0)

        return f"{self._transaction(append)}-0"

    def close(self) -> None:
        self._connection.close()
