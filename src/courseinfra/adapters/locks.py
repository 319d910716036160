"""Named locks across processes: advisory file locks beside a SQLite database, PostgreSQL's session
advisory locks. Both are released by the operating system or the server when their holder dies, even
killed, so that a crashed relay never blocks the next one."""

from __future__ import annotations

import fcntl
import hashlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import sqlalchemy as sa

from courseinfra.services.unit_of_work import Locks


class _ReentrantLocks(Locks):
    """In-process part of every implementation: threads of one process take turns on a name (a
    re-entrant lock each), and a thread that already holds a name does not ask the other processes
    again."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._threads: dict[str, threading.RLock] = {}
        self._depth: dict[str, int] = {}

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        with self._guard:
            thread_lock = self._threads.setdefault(name, threading.RLock())
        with thread_lock:
            depth = self._depth.get(name, 0)
            self._depth[name] = depth + 1
            try:
                if depth:
                    yield
                else:
                    with self._across_processes(name):
                        yield
            finally:
                self._depth[name] = depth

    def _across_processes(self, name: str) -> AbstractContextManager[None]:
        raise NotImplementedError


class FileLocks(_ReentrantLocks):
    """``flock`` on ``<folder>/<name>.lock``: for processes on one machine (the embedded database)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    @contextmanager
    def _across_processes(self, name: str) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"{name}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def advisory_key(name: str) -> int:
    """A lock name as PostgreSQL's 64-bit advisory lock key (the same in every process)."""
    return int.from_bytes(hashlib.sha256(f"courseinfra:{name}".encode()).digest()[:8], "big", signed=True)


class PostgresLocks(_ReentrantLocks):
    """A session advisory lock held on a connection of its own for as long as the block runs: the
    server releases it when the connection ends, whatever ended it."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__()
        self.engine = engine

    @contextmanager
    def _across_processes(self, name: str) -> Iterator[None]:
        key = advisory_key(name)
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            connection.execute(sa.select(sa.func.pg_advisory_lock(key)))
            try:
                yield
            finally:
                connection.execute(sa.select(sa.func.pg_advisory_unlock(key)))
        except BaseException:
            # A connection whose lock state is unknown never goes back to the pool.
            connection.invalidate()
            raise
        finally:
            connection.close()
