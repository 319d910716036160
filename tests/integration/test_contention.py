"""A unit of work that loses to a concurrent writer leaves with Contention (rolled back, safe to run
again), on both databases; ``retrying`` runs it again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from courseinfra.adapters.sql.engine import SqliteTuning, create_engine
from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.bootstrap import App
from courseinfra.domain.progress import EnrolmentKey
from courseinfra.services.transactions import retrying
from courseinfra.services.unit_of_work import Contention
from tests.support.workload import prepare

#: Real processes at length: the full tier (`make test`), not `make check`.
pytestmark = pytest.mark.slow


KEY = EnrolmentKey("learner-000", "course", "b1")


def test_a_writer_that_cannot_get_its_lock_in_time_leaves_with_contention(app: App) -> None:
    prepare(app, [KEY.user_id])
    if app.engine.dialect.name == "sqlite":
        impatient = create_engine(str(app.engine.url), sqlite=SqliteTuning(busy_timeout=0.1))
    else:
        impatient = app.engine

    def take_the_enrolment() -> None:
        with SqlUnitOfWork(impatient) as loser:
            if impatient.dialect.name == "postgresql":
                loser.connection.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
            loser.enrolments.get_many([KEY], for_update=True)

    with app.uow_factory() as holder:
        holder.enrolments.get_many([KEY], for_update=True)
        with pytest.raises(Contention):
            take_the_enrolment()
    take_the_enrolment()  # free again once the holder is done
    # A read-only unit of work on SQLite takes no lock: it reads while the writer holds it.
    with app.uow_factory() as holder:
        holder.enrolments.get_many([KEY], for_update=True)
        with SqlUnitOfWork(impatient, read_only=True) as reader:
            assert KEY in reader.enrolments.get_many([KEY])
    if impatient is not app.engine:
        impatient.dispose()


def test_retrying_runs_the_work_again_until_it_wins_or_gives_up() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def loses_twice() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Contention("deadlock detected")
        return "done"

    assert retrying(loses_twice, sleep=waits.append) == "done"
    assert len(calls) == 3
    assert len(waits) == 2
    assert waits[0] < waits[1] <= 0.04

    def always_loses() -> None:
        raise Contention("database is locked")

    waits.clear()
    with pytest.raises(Contention):
        retrying(always_loses, attempts=4, sleep=waits.append)
    assert len(waits) == 3


def test_sqlite_connections_are_set_up_as_the_settings_say(tmp_path: Path) -> None:
    tuning = SqliteTuning(cache_mb=7, mmap_mb=3, wal_autocheckpoint=123, synchronous="FULL")
    engine = create_engine(f"sqlite:///{tmp_path / 'tuned.sqlite3'}", sqlite=tuning)
    try:
        with engine.connect() as connection:
            read = {
                pragma: connection.exec_driver_sql(f"PRAGMA {pragma}").scalar()
                for pragma in ("journal_mode", "synchronous", "cache_size", "mmap_size", "wal_autocheckpoint")
            }
    finally:
        engine.dispose()
    assert read == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "cache_size": -7 * 1024,
        "mmap_size": 3 * 1024 * 1024,
        "wal_autocheckpoint": 123,
    }


def test_a_reading_unit_of_work_refuses_writes_and_leaves_its_connection_writable(app: App) -> None:
    prepare(app, [KEY.user_id])
    for _ in range(3):  # the pool hands the same connections on
        with app.uow_factory().reading() as reader:
            assert KEY in reader.enrolments.get_many([KEY])
            with pytest.raises(sa.exc.DBAPIError):
                reader.enrolments.set_active(KEY, False, datetime.now(UTC))
        with app.uow_factory() as writer:
            assert writer.enrolments.set_active(KEY, True, datetime.now(UTC))
            writer.commit()
