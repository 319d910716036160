"""One contract for the SQL stores and unit of work, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa

from courseinfra.adapters.sql.engine import create_engine, migrate
from courseinfra.adapters.sql.store import SqlUnitOfWork
from courseinfra.domain.events import Event
from courseinfra.domain.job_requests import Outcome
from courseinfra.services.ports import NewFailedEvent
from tests.conftest import truncate_all
from tests.helpers import collection, leaf

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class SomethingHappened(Event):
    event_type: ClassVar[str] = "courseinfra.test.something.happened.v1"
    subject: str

    @property
    def key(self) -> str:
        return self.subject


def failed(job: str = "job", outcome: Outcome = Outcome.FAILED, code: str = "bad") -> NewFailedEvent:
    return NewFailedEvent(job, outcome, code, f"reason {code}", '{"x": 1}', "file:1")


class SqlStoreContract:
    """Subclasses provide the ``engine`` fixture, migrated and empty."""

    def test_put_versions_each_hierarchy(self, engine: sa.Engine) -> None:
        tree = collection("c1", leaf("r1"), visibility="Default")
        with SqlUnitOfWork(engine) as uow:
            assert uow.hierarchies.put("c1", "application/vnd.ekstep.content-collection", tree) == 1
            assert uow.hierarchies.put("c1", "application/vnd.ekstep.content-collection", tree) == 2
            assert uow.hierarchies.put("c2", "application/vnd.ekstep.content-collection", tree) == 1
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            stored = uow.hierarchies.get("c1")
        assert stored is not None
        assert stored.version == 2
        assert stored.hierarchy == tree
        assert stored.published_at is None

    def test_mark_published_keeps_an_aware_time(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.hierarchies.put("c1", "m", {"identifier": "c1"})
            uow.hierarchies.mark_published("c1", T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            stored = uow.hierarchies.get("c1")
        assert stored is not None
        assert stored.published_at == T0

    def test_published_ids_page_in_order(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            for identifier in ("c3", "c1", "c2", "draft"):
                uow.hierarchies.put(identifier, "m", {"identifier": identifier})
            for identifier in ("c3", "c1", "c2"):
                uow.hierarchies.mark_published(identifier, T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.hierarchies.published_ids() == ["c1", "c2", "c3"]
            assert uow.hierarchies.published_ids(after="c1", limit=1) == ["c2"]

    def test_open_failures_are_counted_by_job(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            assert uow.failed_events.last_id() == 0
            first = uow.failed_events.add(failed("a"), T0)
            uow.failed_events.add(failed("a"), T0)
            uow.failed_events.add(failed("b", Outcome.SKIPPED), T0)
            last = uow.failed_events.add(failed("c"), T0)
            uow.failed_events.record_attempt(first, at=T0, resolved=True, code="ok", reason="")
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.failed_events.count_open() == {"a": 1, "c": 1}
            assert uow.failed_events.last_id() == last

    def test_leaving_without_commit_rolls_back(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.hierarchies.put("c1", "m", {"identifier": "c1"})
            uow.record(SomethingHappened(subject="c1"))
        with SqlUnitOfWork(engine) as uow:
            assert uow.hierarchies.get("c1") is None
            assert uow.outbox.pending() == []

    def test_commit_writes_recorded_events_to_the_outbox(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.record(
                SomethingHappened(subject="a", occurred_at=T0), SomethingHappened(subject="b", occurred_at=T0)
            )
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            pending = uow.outbox.pending()
            assert [(m.event_type, m.key, m.payload["subject"]) for m in pending] == [
                ("courseinfra.test.something.happened.v1", "a", "a"),
                ("courseinfra.test.something.happened.v1", "b", "b"),
            ]
            uow.outbox.mark_attempt_failed(pending[0].id, "boom")
            uow.outbox.mark_relayed(pending[1].id, T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            still = uow.outbox.pending()
        assert [(m.key, m.attempts) for m in still] == [("a", 1)]

    def test_failed_events_list_filter_and_page(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            ids = [
                uow.failed_events.add(failed("a"), T0),
                uow.failed_events.add(failed("b", Outcome.SKIPPED, "meh"), T0),
                uow.failed_events.add(failed("a", code="worse"), T0),
            ]
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert [e.id for e in uow.failed_events.list()] == [ids[0], ids[2]]
            assert [e.id for e in uow.failed_events.list(outcomes=(Outcome.FAILED, Outcome.SKIPPED))] == ids
            assert [e.id for e in uow.failed_events.list(job="a", limit=1)] == [ids[0]]
            assert [e.id for e in uow.failed_events.list(after_id=ids[0])] == [ids[2]]
            event = uow.failed_events.get(ids[2])
        assert event is not None
        assert (event.job, event.code, event.payload, event.source, event.attempts) == (
            "a",
            "worse",
            '{"x": 1}',
            "file:1",
            1,
        )
        assert event.created_at == T0

    def test_a_replay_is_recorded(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            first = uow.failed_events.add(failed(), T0)
            second = uow.failed_events.add(failed(), T0)
            uow.failed_events.record_attempt(
                first, at=T0 + timedelta(hours=1), resolved=False, code="still", reason="again"
            )
            uow.failed_events.record_attempt(
                second, at=T0 + timedelta(hours=1), resolved=True, code="ok", reason=""
            )
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            open_ = uow.failed_events.list()
            everything = uow.failed_events.list(include_resolved=True)
        assert [(e.id, e.code, e.reason, e.attempts) for e in open_] == [(first, "still", "again", 2)]
        assert [e.resolved_at for e in everything] == [None, T0 + timedelta(hours=1)]

    def test_counters_accumulate(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.counters.add("job", {"total": 2, "success": 1, "failed": 0})
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            uow.counters.add("job", {"total": 3, "failed": 1})
            uow.counters.add("other", {"total": 1})
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.counters.all() == {
                "job": {"total": 5, "success": 1, "failed": 1},
                "other": {"total": 1},
            }

    def test_a_counter_at_zero_exists(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.counters.add("job", {"failed": 0})
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.counters.all() == {"job": {"failed": 0}}


class TestSqliteStore(SqlStoreContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[sa.Engine]:
        engine = create_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
        migrate(engine)
        yield engine
        engine.dispose()

    def test_sqlite_runs_in_wal_mode(self, engine: sa.Engine) -> None:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


class TestPostgresStore(SqlStoreContract):
    @pytest.fixture
    def engine(self, postgres_engine: sa.Engine) -> Iterator[sa.Engine]:
        truncate_all(postgres_engine)
        yield postgres_engine
        truncate_all(postgres_engine)
