"""The Locks contract, on both implementations (file locks beside SQLite, PostgreSQL advisory locks),
with the other holder a real process: it excludes, it is released when its holder is killed, it is
re-entrant within a thread, and names are independent."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from courseinfra.adapters.locks import FileLocks, PostgresLocks
from courseinfra.services.unit_of_work import Locks
from tests.support.servers import BACKENDS, PG_URL

HOLDER = """
import sys, time
from pathlib import Path
from courseinfra.adapters.locks import FileLocks, PostgresLocks
from courseinfra.adapters.sql.engine import create_engine
kind, where, name = sys.argv[1:4]
locks = FileLocks(Path(where)) if kind == "file" else PostgresLocks(create_engine(where))
with locks.hold(name):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture(params=BACKENDS)
def locks_and_holder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Locks, list[str]]]:
    if request.param == "embedded":
        yield FileLocks(tmp_path / "locks"), ["file", str(tmp_path / "locks")]
        return
    engine: sa.Engine = request.getfixturevalue("postgres_engine")
    locks = PostgresLocks(engine)
    yield locks, ["postgres", PG_URL]
    locks.close()


def hold_in_another_process(holder: list[str], name: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, *holder, name], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def acquired_within(locks: Locks, name: str, seconds: float) -> threading.Event:
    """Start taking ``name`` in a thread; the event is set once it is held (it is then released)."""
    got = threading.Event()

    def take() -> None:
        with locks.hold(name):
            got.set()

    threading.Thread(target=take, daemon=True).start()
    got.wait(seconds)
    return got


def test_a_lock_held_by_another_process_waits_and_is_freed_when_that_process_is_killed(
    locks_and_holder: tuple[Locks, list[str]],
) -> None:
    locks, holder = locks_and_holder
    process = hold_in_another_process(holder, "relay")
    try:
        got = acquired_within(locks, "relay", 1.5)
        assert not got.is_set()
        with locks.hold("other"):  # another name is free meanwhile
            pass
        process.kill()
        process.wait()
        assert got.wait(10)
    finally:
        process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()


def test_a_lock_is_reentrant_in_its_thread_and_excludes_other_threads(
    locks_and_holder: tuple[Locks, list[str]],
) -> None:
    locks, _ = locks_and_holder
    with locks.hold("relay"), locks.hold("relay"):
        assert not acquired_within(locks, "relay", 0.5).is_set()
    started = time.monotonic()
    assert acquired_within(locks, "relay", 5).is_set()
    assert time.monotonic() - started < 5


def test_a_released_lock_is_free_for_another_process(locks_and_holder: tuple[Locks, list[str]]) -> None:
    locks, holder = locks_and_holder
    with locks.hold("relay"):
        pass
    process = hold_in_another_process(holder, "relay")
    process.kill()
    process.wait()
    if process.stdout:
        process.stdout.close()
