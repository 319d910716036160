"""One contract for the report runs and the sync log, on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.reports import ReportRun, RunStatus
from courseinfra.services.sync.ports import SyncFailure
from tests.support.stores import OnPostgres, OnSqlite

T0 = datetime(2026, 1, 1, 9, 0, 0, 123456, tzinfo=UTC)
AS_OF = date(2026, 1, 1)
#: 12:00 in India: 06:30 UTC. Stored times keep the instant, whatever the zone they were given in.
IST = timezone(timedelta(hours=5, minutes=30))
NOON_IST = datetime(2026, 1, 1, 12, 0, tzinfo=IST)


def assert_utc(*values: datetime | None) -> None:
    """Stored times come back aware and in UTC, whatever the database."""
    for value in values:
        assert value is not None
        assert value.utcoffset() == timedelta(0)


def run(run_id: str, started_at: datetime = T0, **fields: Any) -> ReportRun:
    return ReportRun(run_id, AS_OF, RunStatus.RUNNING, started_at, **fields)


def failure(group_id: str = "g1", at: datetime = T0, *not_undone: str, code: str = "bad") -> SyncFailure:
    # The id is the log's to give: add() ignores this one.
    return SyncFailure(0, at, group_id, "add-members", code, f"legacy said {code}", tuple(not_undone))


class ReportRunsContract:
    """Subclasses (of both contracts) provide the ``engine`` fixture, migrated and empty."""

    def test_a_run_round_trips_with_aware_utc_times(self, engine: sa.Engine) -> None:
        added = run("r1", requested_batches=("b2", "b1"), batches_total=2)
        with SqlUnitOfWork(engine) as uow:
            uow.report_runs.add(added)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            found = uow.report_runs.get("r1")
            assert uow.report_runs.get("nope") is None
        # The requested batches keep their order: they are the operator's.
        assert found == added
        assert found.finished_at is None
        assert_utc(found.started_at)

    def test_a_time_of_another_zone_keeps_its_instant(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.report_runs.add(run("r1", NOON_IST, finished_at=NOON_IST + timedelta(minutes=5)))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            found = uow.report_runs.get("r1")
        assert found is not None
        assert found.started_at == datetime(2026, 1, 1, 6, 30, tzinfo=UTC)
        assert found.finished_at == datetime(2026, 1, 1, 6, 35, tzinfo=UTC)
        assert_utc(found.started_at, found.finished_at)

    def test_save_replaces_the_stored_run(self, engine: sa.Engine) -> None:
        first = run("r1", batches_total=3)
        with SqlUnitOfWork(engine) as uow:
            uow.report_runs.add(first)
            uow.report_runs.add(run("r2"))
            uow.commit()
        finished = replace(
            first,
            status=RunStatus.SUCCEEDED,
            batches_done=3,
            rows_written=1200,
            finished_at=T0 + timedelta(minutes=5),
            outcome={"skipped": {"framework-not-accepted": 1}, "files": ["a.csv", "b.csv"]},
        )
        with SqlUnitOfWork(engine) as uow:
            uow.report_runs.save(finished)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            found = uow.report_runs.get("r1")
            other = uow.report_runs.get("r2")
        assert found == finished
        assert_utc(found.finished_at)
        assert other == run("r2")  # another run is not touched

    def test_a_failed_run_keeps_its_error(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.report_runs.add(run("r1"))
            uow.commit()
        failed = replace(
            run("r1"),
            status=RunStatus.FAILED,
            finished_at=T0 + timedelta(seconds=1),
            error="OSError: disk full",
        )
        with SqlUnitOfWork(engine) as uow:
            uow.report_runs.save(failed)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.report_runs.get("r1") == failed

    def test_list_gives_the_latest_runs_first(self, engine: sa.Engine) -> None:
        # Added out of order: the order is the start time's, not the insertion's or the id's.
        with SqlUnitOfWork(engine) as uow:
            for run_id, hours in (("a", 0), ("c", 2), ("b", 1)):
                uow.report_runs.add(run(run_id, T0 + timedelta(hours=hours)))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert [r.run_id for r in uow.report_runs.list()] == ["c", "b", "a"]
            assert [r.run_id for r in uow.report_runs.list(limit=1)] == ["c"]
            assert [r.run_id for r in uow.report_runs.list(limit=2)] == ["c", "b"]

    def test_leaving_without_commit_rolls_the_runs_back(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.report_runs.add(run("r1"))
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            uow.report_runs.add(run("r2"))
            uow.report_runs.save(replace(run("r1"), status=RunStatus.FAILED, error="boom"))
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.report_runs.list() == [run("r1")]


class SyncLogContract:
    def test_add_gives_each_failure_its_id_and_keeps_what_was_not_undone(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            first = uow.sync_log.add(failure("g1", T0, "remove u1 from cohort 3", "delete team t9"))
            second = uow.sync_log.add(failure("g2", T0 + timedelta(seconds=1), code="worse"))
            uow.commit()
        assert first != second
        with SqlUnitOfWork(engine).reading() as uow:
            entries = uow.sync_log.list()
        assert entries == [
            replace(failure("g2", T0 + timedelta(seconds=1), code="worse"), id=second),
            replace(failure("g1", T0, "remove u1 from cohort 3", "delete team t9"), id=first),
        ]
        assert_utc(*(e.at for e in entries))

    def test_a_failure_time_of_another_zone_keeps_its_instant(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.sync_log.add(failure("g1", NOON_IST))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            [entry] = uow.sync_log.list()
        assert entry.at == datetime(2026, 1, 1, 6, 30, tzinfo=UTC)
        assert_utc(entry.at)

    def test_list_gives_the_latest_failures_first(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            ids = [uow.sync_log.add(failure(f"g{n}", T0 + timedelta(minutes=n))) for n in range(4)]
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert [e.id for e in uow.sync_log.list()] == ids[::-1]
            assert [e.id for e in uow.sync_log.list(limit=1)] == [ids[-1]]
            assert [e.group_id for e in uow.sync_log.list(limit=2)] == ["g3", "g2"]

    def test_after_id_keeps_only_the_failures_logged_since(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            ids = [uow.sync_log.add(failure(f"g{n}", T0 + timedelta(minutes=n))) for n in range(4)]
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert [e.id for e in uow.sync_log.list(after_id=ids[1])] == [ids[3], ids[2]]
            # Latest first within the page too.
            assert [e.id for e in uow.sync_log.list(after_id=ids[0], limit=1)] == [ids[3]]
            assert uow.sync_log.list(after_id=ids[-1]) == []

    def test_leaving_without_commit_rolls_the_log_back(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            kept = uow.sync_log.add(failure("g1"))
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            uow.sync_log.add(failure("g2"))
        with SqlUnitOfWork(engine).reading() as uow:
            assert [(e.id, e.group_id) for e in uow.sync_log.list()] == [(kept, "g1")]


class TestSqliteReportRunsAndSyncLog(OnSqlite, ReportRunsContract, SyncLogContract):
    pass


class TestPostgresReportRunsAndSyncLog(OnPostgres, ReportRunsContract, SyncLogContract):
    pass
