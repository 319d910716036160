"""Benchmark of the event streams' append, the last step of every relay (ADR 0015).

Run as ``.venv/bin/python bench/event_stream.py [--messages 300000] [--max-length 100000] [--markdown]``.
The same AUDIT-sized messages (about 750 bytes of JSON each) are appended in pages of ``--page``, as a
relay appends them, measured with ``time.perf_counter`` in this one process, all in the same run:

- embedded (SQLite): ``SqliteEventStream.append`` (each stream's length kept beside it, the oldest
  entries deleted by primary key), against the same inserts with no trimming at all (the file's raw
  limit) and against the former trim, which counted the stream with ``OFFSET max_length`` at every append;
- Redis: ``RedisEventStream.append`` (one MULTI/EXEC of ``XADD ... MAXLEN = n``), against the same
  pipeline with ``MAXLEN ~ n`` (approximate trimming, as edx-event-bus-redis does) and with no trimming.

Each stream is filled past ``--max-length`` so that trimming is measured, not only appending. The Redis
keys are under ``courseinfra-bench:streams:`` in ``--redis-url``'s database (db 13 by default) and are
deleted afterwards; the SQLite files are in a temporary folder.
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import redis

from courseinfra.adapters.streams import RedisEventStream, SqliteEventStream
from courseinfra.services.events.ports import OutboxMessage

AUDIT = "courseinfra.learning.audit.emitted.v1"
PAYLOAD = {
    "user_id": "learner-000123",
    "course_id": "do_course_0042",
    "batch_id": "batch-0042-1",
    "telemetry": {
        "eid": "AUDIT",
        "ets": 1764633600000,
        "ver": "3.0",
        "mid": "LP.AUDIT." + "0f" * 16,
        "actor": {"id": "learner-000123", "type": "User"},
        "context": {
            "channel": "in.ekstep",
            "pdata": {"ver": "3.0", "id": "org.sunbird.learning.platform", "pid": "course-metrics-updater"},
            "env": "Course",
            "cdata": [
                {"type": "CourseBatch", "id": "batch-0042-1"},
                {"type": "Course", "id": "do_course_0042"},
            ],
        },
        "object": {"id": "do_course_0042_unit_07", "type": "CourseUnit", "rollup": {"l1": "do_course_0042"}},
        "edata": {"props": ["progress"], "type": "completed"},
    },
}

Append = Callable[[Sequence[OutboxMessage]], None]


def pages(total: int, size: int) -> list[list[OutboxMessage]]:
    return [
        [OutboxMessage(first + n, AUDIT, "learner-000123", PAYLOAD, attempts=0) for n in range(size)]
        for first in range(1, total + 1, size)
    ]


def measure(append: Append, batches: list[list[OutboxMessage]]) -> float:
    """Messages per second over every page."""
    started = time.perf_counter()
    for batch in batches:
        append(batch)
    return sum(len(batch) for batch in batches) / (time.perf_counter() - started)


def sqlite_runs(folder: Path, max_length: int) -> dict[str, Callable[[], Append]]:
    def stream(name: str) -> SqliteEventStream:
        return SqliteEventStream(folder / f"{name}.sqlite3", max_length)

    def untrimmed() -> Append:
        target = stream("untrimmed")

        def append(messages: Sequence[OutboxMessage]) -> None:
            rows = [(m.event_type, m.id, m.key, orjson.dumps(m.payload).decode()) for m in messages]
            _in_transaction(target._connection, rows, None)

        return append

    def counted_trim() -> Append:
        target = stream("counted")

        def append(messages: Sequence[OutboxMessage]) -> None:
            rows = [(m.event_type, m.id, m.key, orjson.dumps(m.payload).decode()) for m in messages]
            _in_transaction(target._connection, rows, max_length)

        return append

    return {
        "SqliteEventStream.append": lambda: stream("adapter").append,
        "no trimming (raw limit)": untrimmed,
        "former trim (OFFSET max_length per append)": counted_trim,
    }


def _in_transaction(db: sqlite3.Connection, rows: list[tuple[str, int, str, str]], trim: int | None) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO stream_entries (event_type, message_id, key, payload) VALUES (?, ?, ?, ?)", rows
    )
    if trim is not None:
        db.execute(
            "DELETE FROM stream_entries WHERE event_type = ? AND position <= (SELECT position FROM "
            "stream_entries WHERE event_type = ? ORDER BY position DESC LIMIT 1 OFFSET ?)",
            (AUDIT, AUDIT, trim),
        )
    db.execute("COMMIT")


def redis_runs(client: redis.Redis, max_length: int) -> dict[str, Callable[[], Append]]:
    def pipelined(name: str, approximate: bool | None) -> Callable[[], Append]:
        def build() -> Append:
            key = f"courseinfra-bench:streams:{name}:{AUDIT}"

            def append(messages: Sequence[OutboxMessage]) -> None:
                pipeline = client.pipeline(transaction=True)
                for m in messages:
                    fields = {"id": m.id, "key": m.key, "payload": orjson.dumps(m.payload)}
                    if approximate is None:
                        pipeline.xadd(key, fields)  # type: ignore[arg-type]
                    else:
                        pipeline.xadd(key, fields, maxlen=max_length, approximate=approximate)  # type: ignore[arg-type]
                pipeline.execute()

            return append

        return build

    return {
        "RedisEventStream.append (MAXLEN =)": lambda: (
            RedisEventStream(client, max_length, "courseinfra-bench:streams:adapter").append
        ),
        "MAXLEN ~ (approximate)": pipelined("approximate", True),
        "no trimming (raw limit)": pipelined("untrimmed", None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--max-length", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1000, help="messages per append (a relay page)")
    parser.add_argument("--backends", default="embedded,redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--markdown", action="store_true")
    options = parser.parse_args()
    batches = pages(options.messages, options.page)
    rows: list[tuple[str, str, float]] = []
    backends = options.backends.split(",")
    if "embedded" in backends:
        with tempfile.TemporaryDirectory(prefix="courseinfra-bench-streams-") as folder:
            for name, build in sqlite_runs(Path(folder), options.max_length).items():
                rows.append(("embedded (SQLite)", name, measure(build(), batches)))
    if "redis" in backends:
        client = redis.Redis.from_url(options.redis_url)
        try:
            for name, build in redis_runs(client, options.max_length).items():
                rows.append(("Redis", name, measure(build(), batches)))
        finally:
            keys = list(client.scan_iter(match="courseinfra-bench:streams:*"))
            if keys:
                client.delete(*keys)
            client.close()
    print(
        f"event stream append: {options.messages:,} messages of {len(orjson.dumps(PAYLOAD))} bytes in pages of "
        f"{options.page}, streams kept to {options.max_length:,}; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )
    if options.markdown:
        print("\n| backend | append | messages/s | µs a message |\n|---|---|---:|---:|")
        for backend, name, rate in rows:
            print(f"| {backend} | {name} | {rate:,.0f} | {1e6 / rate:.1f} |")
    else:
        for backend, name, rate in rows:
            print(f"{backend:20} {name:45} {rate:10,.0f} messages/s  {1e6 / rate:6.1f} µs")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
