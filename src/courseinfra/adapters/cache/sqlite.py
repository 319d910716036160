"""The embedded relation cache: a SQLite file in WAL mode, shared by every process on the machine.

A plain in-process dictionary would forget the cache between two commands (``ingest``, then
``cache get``); a file keeps it, and WAL lets readers see the last committed replacement while a writer
prepares the next one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import orjson

from courseinfra.domain.cache_layout import CacheList, CacheSet, CacheText, CacheValue
from courseinfra.services.cache.ports import RelationCache, ReplaceResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entries (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache_claims (owner TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (owner, key))
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_claims_by_key ON cache_claims (key);
"""


def encode(value: CacheValue) -> tuple[str, str]:
    match value:
        case CacheSet(members):
            return "set", orjson.dumps(sorted(members)).decode()
        case CacheList(items):
            return "list", orjson.dumps(list(items)).decode()
        case CacheText(text):
            return "text", text


def decode(kind: str, value: str) -> CacheValue:
    if kind == "set":
        return CacheSet(frozenset(orjson.loads(value)))
    if kind == "list":
        return CacheList(tuple(orjson.loads(value)))
    return CacheText(value)


def _chunks(items: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteRelationCache(RelationCache):
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(
            str(path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(
            "PRAGMA cache_size=-65536"
        )  # 64 MiB: a large course outgrows the default 2 MiB
        self._connection.executescript(SCHEMA)
        self._lock = threading.Lock()

    def replace_owned(self, owner: str, entries: Mapping[str, CacheValue]) -> ReplaceResult:
        # In key order: B-tree inserts then append to the same pages instead of touching the whole file.
        rows = sorted((key, *encode(value)) for key, value in entries.items())
        with self._lock:
            db = self._connection
            db.execute("BEGIN IMMEDIATE")
            try:
                old = {key for (key,) in db.execute("SELECT key FROM cache_claims WHERE owner = ?", (owner,))}
                new = set(entries)
                stale = sorted(old - new)
                db.executemany(
                    "DELETE FROM cache_claims WHERE owner = ? AND key = ?", [(owner, k) for k in stale]
                )
                db.executemany(
                    "INSERT OR IGNORE INTO cache_claims (owner, key) VALUES (?, ?)",
                    [(owner, k) for k in sorted(new - old)],
                )
                deleted = 0
                for chunk in _chunks(stale):
                    marks = ",".join("?" * len(chunk))
                    deleted += db.execute(
                        f"DELETE FROM cache_entries WHERE key IN ({marks}) "
                        "AND NOT EXISTS (SELECT 1 FROM cache_claims c WHERE c.key = cache_entries.key)",
                        tuple(chunk),
                    ).rowcount
                db.executemany(
                    "INSERT OR REPLACE INTO cache_entries (key, kind, value) VALUES (?, ?, ?)", rows
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return ReplaceResult(written=len(rows), deleted=deleted)

    def get(self, key: str) -> CacheValue | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT kind, value FROM cache_entries WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else decode(*row)

    def get_many(self, keys: Sequence[str]) -> dict[str, CacheValue | None]:
        found: dict[str, CacheValue | None] = dict.fromkeys(keys)
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for chunk in _chunks(unique):
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, kind, value FROM cache_entries WHERE key IN ({marks})"
                for key, kind, value in self._connection.execute(query, tuple(chunk)):
                    found[key] = decode(kind, value)
        return found

    def owned_keys(self, owner: str) -> frozenset[str]:
        with self._lock:
            rows = self._connection.execute("SELECT key FROM cache_claims WHERE owner = ?", (owner,))
            return frozenset(key for (key,) in rows)

    def clear(self) -> None:
        with self._lock:
            self._connection.execute("DELETE FROM cache_entries")
            self._connection.execute("DELETE FROM cache_claims")

    def close(self) -> None:
        self._connection.close()
