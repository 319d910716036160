"""A unit of work that loses to a concurrent writer leaves with Contention (rolled back, safe to run
again), on both databases; ``retrying`` runs it again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from courseinfra.adapters.sql.engine import create_engine
from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.bootstrap import App
from courseinfra.domain.progress import EnrolmentKey
from courseinfra.services.ports import Contention
from courseinfra.services.transactions import retrying
from tests.workload import prepare

KEY = EnrolmentKey("learner-000", "course", "b1")


def test_a_writer_that_cannot_get_its_lock_in_time_leaves_with_contention(app: App) -> None:
    prepare(app, [KEY.user_id])
    if app.engine.dialect.name == "sqlite":
        impatient = create_engine(str(app.engine.url), busy_timeout=0.1)
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
