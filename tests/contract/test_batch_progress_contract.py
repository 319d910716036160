"""The batch progress aggregate (``EnrolmentStore.batch_progress``), on SQLite and on PostgreSQL: the
store counts a batch's enrolments by progress bucket and completions by UTC day, and nothing of another
batch."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import sqlalchemy as sa

from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.enrolments import Enrolment
from courseinfra.domain.progress import EnrolmentKey, EnrolmentState, EnrolmentStatus
from courseinfra.services.enrolments import BatchProgress
from tests.support.stores import OnPostgres, OnSqlite

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def state(user: str, batch: str, percent: int, completed_on: datetime | None = None) -> EnrolmentState:
    status = (
        EnrolmentStatus.COMPLETED
        if completed_on
        else EnrolmentStatus.IN_PROGRESS
        if percent > 0
        else EnrolmentStatus.NOT_STARTED
    )
    return EnrolmentState(
        EnrolmentKey(user, "c1", batch),
        status=status,
        progress=percent,
        completion_percentage=percent,
        completed_on=completed_on,
        last_updated=T0,
    )


class BatchProgressContract:
    """Subclasses provide the ``engine`` fixture, migrated and empty."""

    def test_an_empty_batch_counts_zeros(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            found = uow.enrolments.batch_progress("none")
        assert found == BatchProgress(0, 0, 0, 0, (0,) * 11, ())

    def test_buckets_completions_per_utc_day_and_those_who_left(self, engine: sa.Engine) -> None:
        late_evening = datetime(2026, 3, 2, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # the 3rd in UTC
        states = [
            state("u01", "b1", 0),
            state("u02", "b1", 9),
            state("u03", "b1", 10),
            state("u04", "b1", 55),
            state("u05", "b1", 99),
            state("u06", "b1", 100, T0),
            state("u07", "b1", 100, T0 + timedelta(hours=3)),
            state("u08", "b1", 100, late_evening),
            state("u09", "b1", 130),  # out of range: clamped, as the report does
            state("u10", "b1", -4),
            state("u11", "b1", 100, T0 + timedelta(days=5)),  # left later: no participant, yet it completed
            state("u12", "b2", 100, T0),  # another batch
        ]
        with SqlUnitOfWork(engine) as uow:
            for s in states:
                uow.enrolments.add(Enrolment(EnrolmentState(s.key, last_updated=T0), True, T0))
            uow.enrolments.save_progress(states)
            assert uow.enrolments.set_active(EnrolmentKey("u11", "c1", "b1"), False, T0 + timedelta(days=6))
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            found = uow.enrolments.batch_progress("b1")
        assert found.enrolled == 10
        assert found.left == 1
        assert found.started == 8  # u01 and u10 have not started
        assert found.completed == 3
        assert found.histogram == (3, 1, 0, 0, 0, 1, 0, 0, 0, 1, 4)
        assert found.completions == (
            (date(2026, 3, 1), 2),
            (date(2026, 3, 3), 1),
            (date(2026, 3, 6), 1),
        )


class TestSqliteBatchProgress(OnSqlite, BatchProgressContract):
    pass


class TestPostgresBatchProgress(OnPostgres, BatchProgressContract):
    pass
