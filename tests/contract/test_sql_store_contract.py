"""One contract for the SQL stores and unit of work, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa

from courseinfra.adapters.sql.engine import create_engine, migrate
from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.enrolments import CourseBatch, Enrolment
from courseinfra.domain.events import Event
from courseinfra.domain.job_requests import Outcome
from courseinfra.domain.progress import (
    AuditAction,
    AuditObject,
    AuditRecord,
    EnrolmentKey,
    EnrolmentState,
    EnrolmentStatus,
    UnitMetrics,
)
from courseinfra.services.content.ports import ContentSummary
from courseinfra.services.events.ports import RelayCursor
from courseinfra.services.failed_events.ports import NewFailedEvent
from courseinfra.services.unit_of_work import AlreadyExists
from tests.support.builders import collection, leaf
from tests.support.servers import truncate_all

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class SomethingHappened(Event):
    event_type: ClassVar[str] = "courseinfra.test.something.happened.v1"
    subject: str

    @property
    def key(self) -> str:
        return self.subject


def failed(
    job: str = "job",
    outcome: Outcome = Outcome.FAILED,
    code: str = "bad",
    *,
    payload: str = '{"x": 1}',
    source: str = "file:1",
) -> NewFailedEvent:
    return NewFailedEvent(job, outcome, code, f"reason {code}", payload, source)


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
            uow.failed_events.add(failed("a", payload='{"x": 2}'), T0)
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
            uow.outbox.mark_relayed([pending[1].id], T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            still = uow.outbox.pending()
        assert [(m.key, m.attempts) for m in still] == [("a", 1)]

    def test_relayed_messages_older_than_a_date_are_pruned_a_page_at_a_time(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.record(*(SomethingHappened(subject=s, occurred_at=T0) for s in "abcd"))
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            a, b, c, _ = uow.outbox.pending()
            uow.outbox.mark_relayed([a.id, b.id], T0)
            uow.outbox.mark_relayed([c.id], T0 + timedelta(days=10))
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.outbox.prune_relayed(T0 + timedelta(days=1), limit=1) == 1
            assert uow.outbox.prune_relayed(T0 + timedelta(days=1)) == 1
            assert uow.outbox.prune_relayed(T0 + timedelta(days=1)) == 0  # c is too recent, d pending
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert [m.key for m in uow.outbox.pending()] == ["d"]
            assert uow.outbox.prune_relayed(T0 + timedelta(days=11)) == 1

    def test_failed_events_list_filter_and_page(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            ids = [
                uow.failed_events.add(failed("a"), T0),
                uow.failed_events.add(failed("b", Outcome.SKIPPED, "meh"), T0),
                uow.failed_events.add(failed("a", code="worse", payload='{"x": 2}', source="file:2"), T0),
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
            '{"x": 2}',
            "file:2",
            1,
        )
        assert event.created_at == T0

    def test_a_replay_is_recorded(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            first = uow.failed_events.add(failed(), T0)
            second = uow.failed_events.add(failed(payload='{"x": 2}'), T0)
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

    def test_an_event_kept_again_while_open_is_one_entry_with_its_attempts(self, engine: sa.Engine) -> None:
        later = T0 + timedelta(hours=1)
        with SqlUnitOfWork(engine) as uow:
            first = uow.failed_events.add(failed("a"), T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            again = uow.failed_events.add(failed("a", code="worse", source="file:7"), later)
            uow.commit()
        assert again == first
        with SqlUnitOfWork(engine) as uow:
            [entry] = uow.failed_events.list(include_resolved=True)
            assert uow.failed_events.count_open() == {"a": 1}
            assert uow.failed_events.last_id() == first
        assert (entry.id, entry.attempts, entry.code, entry.reason, entry.source) == (
            first,
            2,
            "worse",
            "reason worse",
            "file:7",
        )
        assert (entry.created_at, entry.last_attempt_at, entry.resolved_at) == (T0, later, None)

    def test_the_same_payload_of_another_job_is_another_entry(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            a = uow.failed_events.add(failed("a"), T0)
            b = uow.failed_events.add(failed("b"), T0)
            uow.commit()
        assert a != b
        with SqlUnitOfWork(engine) as uow:
            assert [(e.id, e.job, e.attempts) for e in uow.failed_events.list()] == [(a, "a", 1), (b, "b", 1)]
            assert uow.failed_events.count_open() == {"a": 1, "b": 1}

    def test_a_resolved_entry_does_not_absorb_the_same_event_failing_again(self, engine: sa.Engine) -> None:
        later = T0 + timedelta(hours=1)
        with SqlUnitOfWork(engine) as uow:
            first = uow.failed_events.add(failed("a"), T0)
            uow.failed_events.record_attempt(first, at=T0, resolved=True, code="ok", reason="")
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            reopened = uow.failed_events.add(failed("a"), later)
            assert uow.failed_events.add(failed("a"), later) == reopened
            uow.commit()
        assert reopened > first
        with SqlUnitOfWork(engine) as uow:
            assert [(e.id, e.attempts) for e in uow.failed_events.list()] == [(reopened, 2)]
            everything = uow.failed_events.list(include_resolved=True)
            assert uow.failed_events.count_open() == {"a": 1}
        assert [(e.id, e.attempts, e.resolved_at) for e in everything] == [
            (first, 2, T0),
            (reopened, 2, None),
        ]

    def test_a_skipped_event_kept_again_is_one_entry(self, engine: sa.Engine) -> None:
        both = (Outcome.FAILED, Outcome.SKIPPED)
        with SqlUnitOfWork(engine) as uow:
            first = uow.failed_events.add(failed("a", Outcome.SKIPPED, "meh"), T0)
            assert uow.failed_events.add(failed("a", Outcome.SKIPPED, "meh"), T0) == first
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert [(e.id, e.outcome, e.attempts) for e in uow.failed_events.list(outcomes=both)] == [
                (first, Outcome.SKIPPED, 2)
            ]
            assert uow.failed_events.count_open() == {}

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

    def test_batches_are_unique_and_listed_by_course(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.batches.add(CourseBatch("b2", "c1", "Two", T0, end_date=date(2026, 12, 31), mentors=("m1",)))
            uow.batches.add(CourseBatch("b1", "c1", "One", T0))
            uow.batches.add(CourseBatch("b3", "c2", "Three", T0))
            with pytest.raises(AlreadyExists):
                uow.batches.add(CourseBatch("b1", "c9", "Again", T0))
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert [b.batch_id for b in uow.batches.list(course_id="c1")] == ["b1", "b2"]
            assert [b.batch_id for b in uow.batches.list(after="b1", limit=1)] == ["b2"]
            batch = uow.batches.get("b2")
        assert batch == CourseBatch("b2", "c1", "Two", T0, end_date=date(2026, 12, 31), mentors=("m1",))

    def test_enrolments_round_trip_and_bulk_progress(self, engine: sa.Engine) -> None:
        a, b = EnrolmentKey("u1", "c1", "b1"), EnrolmentKey("u2", "c1", "b1")
        with SqlUnitOfWork(engine) as uow:
            assert uow.enrolments.add(
                Enrolment(EnrolmentState(a, last_updated=T0), True, T0, added_by="admin")
            )
            assert uow.enrolments.add(Enrolment(EnrolmentState(b, last_updated=T0), True, T0))
            assert not uow.enrolments.add(Enrolment(EnrolmentState(a, last_updated=T0), True, T0))
            later = T0 + timedelta(days=1)
            done = EnrolmentState(
                a,
                {"r1": 2, "r2": 1},
                EnrolmentStatus.COMPLETED,
                2,
                100,
                later,
                "r2",
                1,
                later,
                status_times={"r1": (1_700_000_000_000, 1_700_000_500_000), "r2": (1_700_000_100_000, None)},
            )
            uow.enrolments.save_progress([done])
            assert uow.enrolments.set_active(b, False, later)
            assert not uow.enrolments.set_active(EnrolmentKey("x", "c1", "b1"), False, later)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            found = uow.enrolments.get_many([a, b, EnrolmentKey("x", "c1", "b1")])
            assert set(found) == {a, b}
            assert found[a].state == done
            assert found[a].added_by == "admin"
            assert found[b].active is False
            assert [e.key for e in uow.enrolments.list_for_batch("b1")] == [a, b]
            assert [e.key for e in uow.enrolments.list_for_batch("b1", after_user="u1")] == [b]
            assert [e.key for e in uow.enrolments.list_for_user("u2")] == [b]

    def test_the_report_reader_reads_the_participants_of_a_past_moment(self, engine: sa.Engine) -> None:
        stay, leave, late = (EnrolmentKey(u, "c1", "b1") for u in ("u1", "u2", "u3"))
        day = timedelta(days=1)
        with SqlUnitOfWork(engine) as uow:
            uow.enrolments.add(Enrolment(EnrolmentState(stay, last_updated=T0), True, T0))
            uow.enrolments.add(Enrolment(EnrolmentState(leave, last_updated=T0), True, T0))
            uow.enrolments.add(Enrolment(EnrolmentState(late, last_updated=T0 + 3 * day), True, T0 + 3 * day))
            progress = EnrolmentState(
                stay,
                {"r1": 2},
                EnrolmentStatus.IN_PROGRESS,
                1,
                50,
                None,
                "r1",
                2,
                T0 + day,
                status_times={"r1": (1_700_000_000_000, 1_700_000_000_500)},
            )
            uow.enrolments.save_progress([progress])
            assert uow.enrolments.set_active(leave, False, T0 + 2 * day)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            # Leaving again keeps the first time the learner left.
            assert uow.enrolments.set_active(leave, False, T0 + 5 * day)
            uow.commit()

        def present(before: datetime | None) -> list[str]:
            with SqlUnitOfWork(engine) as uow:
                return [row.user_id for row in uow.reports.learners("b1", [], before=before)]

        assert present(None) == ["u1", "u3"]
        assert present(T0) == []
        assert present(T0 + day) == ["u1", "u2"]
        assert present(T0 + 2 * day) == ["u1", "u2"]  # left at that very moment: there until then
        assert present(T0 + 2 * day + timedelta(seconds=1)) == ["u1"]
        assert present(T0 + 4 * day) == ["u1", "u3"]
        with SqlUnitOfWork(engine) as uow:
            [first] = uow.reports.learners("b1", [], before=T0 + day, limit=1)
            assert uow.reports.learners("b1", [])[0].history is None
        assert first.history is not None
        assert (first.history.content_status, first.history.status_times) == (
            {"r1": 2},
            {"r1": (1_700_000_000_000, 1_700_000_000_500)},
        )
        assert first.history.last_updated == T0 + day

    def test_activity_upsert_replaces_the_aggregate(self, engine: sa.Engine) -> None:
        first = UnitMetrics("CourseUnit", "unit1", "u1", "cb:b1", 1, 4, 25)
        with SqlUnitOfWork(engine) as uow:
            uow.activity.upsert([first, UnitMetrics("Course", "c1", "u1", "cb:b1", 1, 8, 12)], T0)
            uow.activity.upsert([UnitMetrics("CourseUnit", "unit1", "u1", "cb:b1", 2, 4, 50)], T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.activity.for_user("u1", "cb:b1") == [
                UnitMetrics("Course", "c1", "u1", "cb:b1", 1, 8, 12),
                UnitMetrics("CourseUnit", "unit1", "u1", "cb:b1", 2, 4, 50),
            ]
            assert uow.activity.for_user("u1", "cb:other") == []

    def test_the_audit_log_keeps_appends_in_order_with_their_channel_and_time(
        self, engine: sa.Engine
    ) -> None:
        key, other = EnrolmentKey("u1", "c1", "b1"), EnrolmentKey("u2", "c2", "b2")
        enrol = AuditRecord(key, AuditObject.COURSE, "c1", AuditAction.ENROL)
        start = AuditRecord(key, AuditObject.CONTENT, "r1", AuditAction.START)
        elsewhere = AuditRecord(other, AuditObject.COURSE_UNIT, "unit9", AuditAction.COMPLETE)
        later = AuditRecord(key, AuditObject.CONTENT, "r1", AuditAction.COMPLETE)
        with SqlUnitOfWork(engine) as uow:
            uow.audits.append([(enrol, "ch1"), (elsewhere, None), (start, "ch1")], T0)
            uow.audits.append([], T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            uow.audits.append([(later, "ch1")], T0 + timedelta(days=1))
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            everything = uow.audits.list()
            entries = uow.audits.list(user_id="u1")
            assert uow.audits.list(course_id="other") == []
            assert [e.record for e in uow.audits.list(course_id="c2")] == [elsewhere]
            assert [e.record for e in uow.audits.list(after_id=entries[0].id, user_id="u1", limit=1)] == [
                start
            ]
            assert [e.record for e in uow.audits.list(after_id=entries[1].id)] == [elsewhere, later]
            assert uow.audits.list(limit=0) == []
            whole = uow.audits.read_after(0, 1)
            rest = uow.audits.read_after(whole[-1].id, 2)
        assert [(e.record, e.channel, e.emitted_at) for e in entries] == [
            (enrol, "ch1", T0),
            (start, "ch1", T0),
            (later, "ch1", T0 + timedelta(days=1)),
        ]
        ids = [e.id for e in everything]
        assert ids == sorted(set(ids))
        assert {e.record for e in everything} == {enrol, start, elsewhere, later}
        # read_after ends at the end of a page: the first course's entries of the first append, then
        # the second course's and (two wanted) the second append's.
        assert [e.record for e in whole] == [enrol, start]
        assert [e.record for e in rest] == [elsewhere, later]
        # The telemetry is rebuilt from the entry: the same event on every read, with the emission's time.
        assert entries[1].telemetry == start.telemetry(int(T0.timestamp() * 1000), "ch1")

    def test_the_audit_log_prunes_only_what_was_relayed_before_the_date(self, engine: sa.Engine) -> None:
        records = [
            AuditRecord(EnrolmentKey(f"u{n}", "c1", "b1"), AuditObject.COURSE, "c1", AuditAction.ENROL)
            for n in range(3)
        ]
        for n, record in enumerate(records):
            with SqlUnitOfWork(engine) as uow:
                uow.audits.append([(record, None)], T0 + timedelta(days=n))
                uow.commit()
        with SqlUnitOfWork(engine) as uow:
            ids = [e.id for e in uow.audits.list()]
            # Relayed through the second entry; the date keeps the second one.
            assert uow.audits.prune(through_id=ids[1], before=T0 + timedelta(days=1)) == 1
            assert uow.audits.prune(through_id=ids[1], before=T0 + timedelta(days=1)) == 0
            # The third is younger than the date but not relayed: kept.
            assert uow.audits.prune(through_id=ids[1], before=T0 + timedelta(days=9)) == 1
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert [e.record for e in uow.audits.list()] == [records[2]]

    def test_the_audit_log_assigns_ids_in_commit_order(self, engine: sa.Engine) -> None:
        """A relay that has read up to id N must never later see an uncommitted-then-committed id below
        N: a second writer waits for the first one's commit before it takes ids."""
        first = AuditRecord(EnrolmentKey("u1", "c1", "b1"), AuditObject.COURSE, "c1", AuditAction.ENROL)
        second = AuditRecord(EnrolmentKey("u2", "c1", "b1"), AuditObject.COURSE, "c1", AuditAction.ENROL)
        committed = threading.Event()

        def other_writer() -> None:
            with SqlUnitOfWork(engine) as uow:
                uow.audits.append([(second, None)], T0)
                uow.commit()
            committed.set()

        with SqlUnitOfWork(engine) as uow:
            uow.audits.append([(first, None)], T0)
            writer = threading.Thread(target=other_writer)
            writer.start()
            # The second writer is still waiting: nothing of it is visible before the first commit.
            assert not committed.wait(0.5)
            with SqlUnitOfWork(engine, read_only=True) as reader:
                assert reader.audits.list() == []
            uow.commit()
        writer.join(10)
        assert committed.is_set()
        with SqlUnitOfWork(engine) as uow:
            assert [e.record for e in uow.audits.list()] == [first, second]

    def test_relay_cursors_move_and_keep_failures(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            assert uow.cursors.get("audit").position == 0
            uow.cursors.advance("audit", 7, T0)
            uow.cursors.record_failure("audit", "boom", T0)
            uow.cursors.record_failure("audit", "boom again", T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.cursors.get("audit") == RelayCursor("audit", 7, 2, "boom again", T0)
            uow.cursors.advance("audit", 9, T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.cursors.get("audit") == RelayCursor("audit", 9, 0, None, T0)

    def test_summaries_keep_channel_and_framework_without_the_hierarchy(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.hierarchies.put("c1", "m", {"identifier": "c1", "channel": "ch", "framework": "TPD"})
            uow.hierarchies.put("c2", "m", {"identifier": "c2"})
            uow.hierarchies.mark_published("c1", T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            summaries = uow.hierarchies.summaries(["c1", "c2", "c3"])
        assert summaries == {
            "c1": ContentSummary("c1", 1, T0, "ch", "TPD"),
            "c2": ContentSummary("c2", 1, None, None, None),
        }


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
