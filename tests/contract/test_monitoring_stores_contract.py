"""One contract for what monitoring reads of the stores (ADR 0025), on SQLite and on PostgreSQL: the
counters' samples, the relays' backlogs, and the counts by group and by status."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar

import sqlalchemy as sa

from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.events import Event
from courseinfra.domain.progress import AuditAction, AuditObject, AuditRecord, EnrolmentKey
from courseinfra.domain.reports import ReportRun, RunStatus
from courseinfra.services.events.ports import Backlog, CounterSample
from courseinfra.services.sync.ports import DriftSide, SyncFailure
from tests.support.stores import OnPostgres, OnSqlite

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
BUCKET = timedelta(seconds=10)


@dataclass(frozen=True, kw_only=True)
class Noted(Event):
    event_type: ClassVar[str] = "courseinfra.test.noted.v1"
    subject: str

    @property
    def key(self) -> str:
        return self.subject


def add_counts(engine: sa.Engine, job: str, **counts: int) -> None:
    with SqlUnitOfWork(engine) as uow:
        uow.counters.add(job, counts)
        uow.commit()


def snapshot(engine: sa.Engine, bucket: datetime, at: datetime) -> int:
    with SqlUnitOfWork(engine) as uow:
        kept = uow.counters.snapshot(bucket, at)
        uow.commit()
    return kept


def samples(engine: sa.Engine, since: datetime) -> list[CounterSample]:
    with SqlUnitOfWork(engine).reading() as uow:
        return uow.counters.samples(since)


def audit(user: str, course: str = "c1") -> tuple[AuditRecord, str | None]:
    return AuditRecord(EnrolmentKey(user, course, "b1"), AuditObject.COURSE, course, AuditAction.ENROL), None


class MonitoringStoresContract:
    """Subclasses provide the ``engine`` fixture, migrated and empty."""

    def test_a_snapshot_keeps_every_counter_once_per_bucket(self, engine: sa.Engine) -> None:
        add_counts(engine, "ingest", total=3, failed=1)
        add_counts(engine, "aggregator", total=5)
        assert snapshot(engine, T0, T0 + timedelta(seconds=2)) == 3
        add_counts(engine, "aggregator", total=7)
        # Another process in the same bucket: the first snapshot stands, nothing is added.
        assert snapshot(engine, T0, T0 + timedelta(seconds=8)) == 0
        assert snapshot(engine, T0 + BUCKET, T0 + timedelta(seconds=11)) == 3
        at1, at2 = T0 + timedelta(seconds=2), T0 + timedelta(seconds=11)
        assert samples(engine, T0) == [
            CounterSample(T0, at1, "aggregator", "total", 5),
            CounterSample(T0, at1, "ingest", "failed", 1),
            CounterSample(T0, at1, "ingest", "total", 3),
            CounterSample(T0 + BUCKET, at2, "aggregator", "total", 12),
            CounterSample(T0 + BUCKET, at2, "ingest", "failed", 1),
            CounterSample(T0 + BUCKET, at2, "ingest", "total", 3),
        ]

    def test_samples_since_a_time_start_with_the_bucket_before_it(self, engine: sa.Engine) -> None:
        for n in range(4):
            add_counts(engine, "ingest", total=1)
            snapshot(engine, T0 + n * BUCKET, T0 + n * BUCKET)
        found = samples(engine, T0 + 2 * BUCKET + timedelta(seconds=1))
        assert [(s.bucket, s.value) for s in found] == [(T0 + 2 * BUCKET, 3), (T0 + 3 * BUCKET, 4)]
        assert [s.value for s in samples(engine, T0 - BUCKET)] == [1, 2, 3, 4]
        assert samples(engine, T0 + 9 * BUCKET) == [
            CounterSample(T0 + 3 * BUCKET, T0 + 3 * BUCKET, "ingest", "total", 4)
        ]
        with SqlUnitOfWork(engine) as uow:
            assert uow.counters.prune_samples(T0 + 2 * BUCKET) == 2
            uow.commit()
        assert [s.value for s in samples(engine, T0 - BUCKET)] == [3, 4]

    def test_a_chart_lists_the_buckets_and_reads_some_of_them_for_some_counters(
        self, engine: sa.Engine
    ) -> None:
        for n in range(4):
            add_counts(engine, "ingest", total=1, failed=1)
            add_counts(engine, "aggregator", total=2, **{"db-reads": 1})
            snapshot(engine, T0 + n * BUCKET, T0 + n * BUCKET + timedelta(seconds=1))
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.counters.sample_buckets(T0 + 2 * BUCKET + timedelta(seconds=1)) == [
                T0 + 2 * BUCKET,
                T0 + 3 * BUCKET,
            ]
            assert uow.counters.sample_buckets(T0 - BUCKET) == [T0 + n * BUCKET for n in range(4)]
            assert uow.counters.sample_buckets(T0 + 9 * BUCKET) == [T0 + 3 * BUCKET]
            found = uow.counters.samples_at([T0 + 3 * BUCKET, T0 + BUCKET], ["total"])
            assert uow.counters.samples_at([], ["total"]) == []
            assert uow.counters.samples_at([T0], []) == []
        at1, at3 = T0 + BUCKET + timedelta(seconds=1), T0 + 3 * BUCKET + timedelta(seconds=1)
        assert found == [
            CounterSample(T0 + BUCKET, at1, "aggregator", "total", 4),
            CounterSample(T0 + BUCKET, at1, "ingest", "total", 2),
            CounterSample(T0 + 3 * BUCKET, at3, "aggregator", "total", 8),
            CounterSample(T0 + 3 * BUCKET, at3, "ingest", "total", 4),
        ]

    def test_the_outbox_backlog_counts_pending_messages_and_dates_the_oldest(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.outbox.backlog() == Backlog(0)
        for n in range(3):
            with SqlUnitOfWork(engine) as uow:
                uow.record(Noted(subject=f"s{n}"))
                uow.commit(T0 + timedelta(minutes=n))
        with SqlUnitOfWork(engine) as uow:
            first, second, _ = uow.outbox.pending()
            uow.outbox.mark_attempt_failed(first.id, "handler down")
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.outbox.backlog() == Backlog(3, T0, 1, "handler down")
        with SqlUnitOfWork(engine) as uow:
            uow.outbox.mark_relayed([first.id, second.id], T0 + timedelta(minutes=5))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.outbox.backlog() == Backlog(1, T0 + timedelta(minutes=2), 0, None)

    def test_the_audit_log_counts_the_entries_after_a_cursor(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.audits.pending_after(0) == (0, None)
        with SqlUnitOfWork(engine) as uow:
            uow.audits.append([audit("u1"), audit("u2"), audit("u3")], T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            uow.audits.append([audit("u4", "c2"), audit("u5", "c2")], T0 + timedelta(minutes=1))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            ids = [entry.id for entry in uow.audits.list()]
            assert uow.audits.pending_after(0) == (5, T0)
            # Within the first page: what follows in it and the whole second page.
            assert uow.audits.pending_after(ids[0]) == (4, T0)
            assert uow.audits.pending_after(ids[2]) == (2, T0 + timedelta(minutes=1))
            assert uow.audits.pending_after(ids[3]) == (1, T0 + timedelta(minutes=1))
            assert uow.audits.pending_after(ids[4]) == (0, None)

    def test_drift_and_sync_failures_are_counted_by_group(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            assert uow.drift.count_by_group() == {}
            assert uow.sync_log.count_by_group() == {}
            uow.drift.record("g1", {"u1": DriftSide.ONLY_IN_LEGACY_GROUP}, T0, "test")
            uow.drift.record(
                "g2", {"u1": DriftSide.ONLY_IN_USER_GROUP, "u2": DriftSide.ONLY_IN_LEGACY_GROUP}, T0, "test"
            )
            for group in ("g2", "g3", "g3", "g3"):
                uow.sync_log.add(SyncFailure(0, T0, group, "add-members", "bad", "legacy said no", ()))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.drift.count_by_group() == {"g1": 1, "g2": 2}
            assert uow.sync_log.count_by_group() == {"g2": 1, "g3": 3}

    def test_report_runs_are_counted_by_status(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            assert uow.report_runs.count_by_status() == {}
            running = ReportRun("r1", date(2026, 1, 1), RunStatus.RUNNING, T0)
            uow.report_runs.add(running)
            uow.report_runs.add(replace(running, run_id="r2", status=RunStatus.FAILED))
            uow.report_runs.add(replace(running, run_id="r3", status=RunStatus.FAILED))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.report_runs.count_by_status() == {"running": 1, "failed": 2}


class TestSqliteMonitoringStores(OnSqlite, MonitoringStoresContract):
    pass


class TestPostgresMonitoringStores(OnPostgres, MonitoringStoresContract):
    pass
