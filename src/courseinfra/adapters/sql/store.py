"""SQL implementations of the stores, on one connection and transaction per unit of work."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from courseinfra.adapters.sql.tables import (
    Timestamp,
    content_hierarchy,
    failed_events,
    job_counter_samples,
    job_counters,
    outbox,
)
from courseinfra.domain.events import Event
from courseinfra.domain.job_requests import Outcome
from courseinfra.services.content.ports import ContentSummary, HierarchyStore, StoredHierarchy
from courseinfra.services.events.ports import Backlog, CounterSample, CounterStore, Outbox, OutboxMessage
from courseinfra.services.failed_events.ports import FailedEvent, FailedEventStore, NewFailedEvent


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives timestamps back without their zone; they were written in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def aware(value: datetime) -> datetime:
    """:func:`_aware` of a timestamp that is never null."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def payload_digest(payload: str) -> str:
    """What identifies a kept event within its job: the hex SHA-256 of its text (migration 0009 has a
    frozen copy)."""
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def upsert(connection: sa.Connection, table: sa.Table) -> Any:
    """An INSERT that can take ``on_conflict_do_update`` on both SQLite and PostgreSQL."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class SqlHierarchyStore(HierarchyStore):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def put(self, identifier: str, mime_type: str, hierarchy: Mapping[str, Any]) -> int:
        now = datetime.now(UTC)
        statement = upsert(self.connection, content_hierarchy).values(
            identifier=identifier,
            mime_type=mime_type,
            hierarchy=hierarchy,
            version=1,
            updated_at=now,
            channel=_text(hierarchy.get("channel")),
            framework=_text(hierarchy.get("framework")),
        )
        statement = statement.on_conflict_do_update(
            index_elements=[content_hierarchy.c.identifier],
            set_={
                "mime_type": statement.excluded.mime_type,
                "hierarchy": statement.excluded.hierarchy,
                "version": content_hierarchy.c.version + 1,
                "updated_at": statement.excluded.updated_at,
                "channel": statement.excluded.channel,
                "framework": statement.excluded.framework,
            },
        ).returning(content_hierarchy.c.version)
        return int(self.connection.execute(statement).scalar_one())

    def get(self, identifier: str) -> StoredHierarchy | None:
        row = self.connection.execute(
            sa.select(content_hierarchy).where(content_hierarchy.c.identifier == identifier)
        ).one_or_none()
        if row is None:
            return None
        return StoredHierarchy(
            identifier=row.identifier,
            mime_type=row.mime_type,
            hierarchy=row.hierarchy,
            version=row.version,
            updated_at=aware(row.updated_at),
            published_at=_aware(row.published_at),
        )

    def mark_published(self, identifier: str, at: datetime) -> None:
        self.connection.execute(
            content_hierarchy.update()
            .where(content_hierarchy.c.identifier == identifier)
            .values(published_at=at)
        )

    def summaries(self, identifiers: Sequence[str]) -> dict[str, ContentSummary]:
        c = content_hierarchy.c
        query = sa.select(c.identifier, c.version, c.published_at, c.channel, c.framework).where(
            c.identifier.in_(list(dict.fromkeys(identifiers)))
        )
        return {
            row.identifier: ContentSummary(
                row.identifier, row.version, _aware(row.published_at), row.channel, row.framework
            )
            for row in self.connection.execute(query)
        }

    def published_ids(self, *, after: str = "", limit: int = 1000) -> list[str]:
        query = (
            sa.select(content_hierarchy.c.identifier)
            .where(content_hierarchy.c.published_at.is_not(None), content_hierarchy.c.identifier > after)
            .order_by(content_hierarchy.c.identifier)
            .limit(limit)
        )
        return [str(identifier) for identifier in self.connection.execute(query).scalars()]


class SqlFailedEventStore(FailedEventStore):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def add(self, event: NewFailedEvent, at: datetime) -> int:
        statement = upsert(self.connection, failed_events).values(
            job=event.job,
            outcome=event.outcome.value,
            code=event.code,
            reason=event.reason,
            payload=event.payload,
            payload_digest=payload_digest(event.payload),
            source=event.source,
            attempts=1,
            created_at=at,
            last_attempt_at=at,
        )
        # The conflict target is the partial unique index ix_failed_events_open_payload: only an open
        # entry absorbs the event again.
        statement = statement.on_conflict_do_update(
            index_elements=[failed_events.c.job, failed_events.c.payload_digest],
            index_where=failed_events.c.resolved_at.is_(None),
            set_={
                "attempts": failed_events.c.attempts + 1,
                "last_attempt_at": statement.excluded.last_attempt_at,
                "outcome": statement.excluded.outcome,
                "code": statement.excluded.code,
                "reason": statement.excluded.reason,
                "source": statement.excluded.source,
            },
        ).returning(failed_events.c.id)
        return int(self.connection.execute(statement).scalar_one())

    @staticmethod
    def _from_row(row: sa.Row[Any]) -> FailedEvent:
        return FailedEvent(
            id=row.id,
            job=row.job,
            outcome=Outcome(row.outcome),
            code=row.code,
            reason=row.reason,
            payload=row.payload,
            source=row.source,
            attempts=row.attempts,
            created_at=aware(row.created_at),
            last_attempt_at=aware(row.last_attempt_at),
            resolved_at=_aware(row.resolved_at),
        )

    def get(self, event_id: int) -> FailedEvent | None:
        row = self.connection.execute(
            sa.select(failed_events).where(failed_events.c.id == event_id)
        ).one_or_none()
        return None if row is None else self._from_row(row)

    def list(
        self,
        *,
        job: str | None = None,
        outcomes: Sequence[Outcome] = (Outcome.FAILED,),
        include_resolved: bool = False,
        limit: int = 100,
        after_id: int = 0,
        code: str | None = None,
    ) -> list[FailedEvent]:
        query = (
            sa.select(failed_events)
            .where(failed_events.c.id > after_id, failed_events.c.outcome.in_([o.value for o in outcomes]))
            .order_by(failed_events.c.id)
            .limit(limit)
        )
        if job is not None:
            query = query.where(failed_events.c.job == job)
        if code is not None:
            query = query.where(failed_events.c.code == code)
        if not include_resolved:
            query = query.where(failed_events.c.resolved_at.is_(None))
        return [self._from_row(row) for row in self.connection.execute(query)]

    def record_attempt(self, event_id: int, *, at: datetime, resolved: bool, code: str, reason: str) -> None:
        values: dict[str, Any] = {"attempts": failed_events.c.attempts + 1, "last_attempt_at": at}
        if resolved:
            values["resolved_at"] = at
        else:
            values.update(code=code, reason=reason)
        self.connection.execute(failed_events.update().where(failed_events.c.id == event_id).values(**values))

    def count_open(self) -> dict[str, int]:
        query = (
            sa.select(failed_events.c.job, sa.func.count())
            .where(failed_events.c.outcome == Outcome.FAILED.value, failed_events.c.resolved_at.is_(None))
            .group_by(failed_events.c.job)
        )
        return {str(job): int(count) for job, count in self.connection.execute(query)}

    def last_id(self) -> int:
        return int(
            self.connection.execute(
                sa.select(sa.func.coalesce(sa.func.max(failed_events.c.id), 0))
            ).scalar_one()
        )


class SqlCounterStore(CounterStore):
    """``on_add`` is told of every add that wrote counts (the unit of work's :meth:`counted`)."""

    def __init__(self, connection: sa.Connection, on_add: Callable[[], None] | None = None) -> None:
        self.connection = connection
        self.on_add = on_add

    def add(self, job: str, counts: Mapping[str, int]) -> None:
        # In name order: concurrent writers (ingest workers) then lock the rows in one order, never
        # each waiting for the other.
        rows = [{"job": job, "counter": name, "value": value} for name, value in sorted(counts.items())]
        if not rows:
            return
        statement = upsert(self.connection, job_counters)
        statement = statement.on_conflict_do_update(
            index_elements=[job_counters.c.job, job_counters.c.counter],
            set_={"value": job_counters.c.value + statement.excluded.value},
        )
        self.connection.execute(statement, rows)
        if self.on_add is not None:
            self.on_add()

    def all(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for row in self.connection.execute(sa.select(job_counters).order_by(job_counters.c.job)):
            result.setdefault(row.job, {})[row.counter] = int(row.value)
        return result

    def snapshot(self, bucket: datetime, at: datetime) -> int:
        c, s = job_counters.c, job_counter_samples.c
        taken = self.connection.execute(
            sa.select(sa.literal(1)).select_from(job_counter_samples).where(s.bucket == bucket).limit(1)
        ).first()
        if taken is not None:
            return 0
        current = sa.select(
            sa.literal(bucket, Timestamp).label("bucket"),
            c.job,
            c.counter,
            c.value,
            sa.literal(at, Timestamp).label("taken_at"),
        ).order_by(c.job, c.counter)
        # A second process in the same bucket (between the check and here) inserts nothing: its rows
        # conflict on the key, and the first snapshot stands.
        statement = (
            upsert(self.connection, job_counter_samples)
            .from_select(["bucket", "job", "counter", "value", "taken_at"], current)
            .on_conflict_do_nothing(index_elements=[s.bucket, s.job, s.counter])
            .returning(s.job)
        )
        return len(self.connection.execute(statement).all())

    def samples(self, since: datetime) -> list[CounterSample]:
        s = job_counter_samples.c
        before = sa.select(sa.func.max(s.bucket)).where(s.bucket < since).scalar_subquery()
        start = sa.func.coalesce(before, since)
        query = sa.select(job_counter_samples).where(s.bucket >= start).order_by(s.bucket, s.job, s.counter)
        return [
            CounterSample(aware(row.bucket), aware(row.taken_at), row.job, row.counter, int(row.value))
            for row in self.connection.execute(query)
        ]

    def sample_buckets(self, since: datetime) -> list[datetime]:
        s = job_counter_samples.c
        before = sa.select(sa.func.max(s.bucket)).where(s.bucket < since).scalar_subquery()
        query = (
            sa.select(s.bucket)
            .distinct()
            .where(s.bucket >= sa.func.coalesce(before, since))
            .order_by(s.bucket)
        )
        return [aware(bucket) for bucket in self.connection.execute(query).scalars()]

    def samples_at(self, buckets: Collection[datetime], counters: Collection[str]) -> list[CounterSample]:
        if not buckets or not counters:
            return []
        s = job_counter_samples.c
        query = (
            sa.select(job_counter_samples)
            .where(s.bucket.in_(sorted(buckets)), s.counter.in_(sorted(counters)))
            .order_by(s.bucket, s.job, s.counter)
        )
        return [
            CounterSample(aware(row.bucket), aware(row.taken_at), row.job, row.counter, int(row.value))
            for row in self.connection.execute(query)
        ]

    def prune_samples(self, before: datetime) -> int:
        statement = job_counter_samples.delete().where(job_counter_samples.c.bucket < before)
        return int(self.connection.execute(statement).rowcount)


class SqlOutbox(Outbox):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def add(self, events: Sequence[Event], at: datetime) -> None:
        self.connection.execute(
            outbox.insert(),
            [
                {
                    "event_type": event.event_type,
                    "key": event.key,
                    "payload": event.payload(),
                    "created_at": at,
                }
                for event in events
            ],
        )

    def pending(self, limit: int = 100, after_id: int = 0) -> list[OutboxMessage]:
        # With the id bound, the (relayed_at, id) index range-scans one page instead of the whole backlog.
        rows = self.connection.execute(
            sa.select(outbox)
            .where(outbox.c.relayed_at.is_(None), outbox.c.id > after_id)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        return [OutboxMessage(row.id, row.event_type, row.key, row.payload, row.attempts) for row in rows]

    def backlog(self) -> Backlog:
        pending = outbox.c.relayed_at.is_(None)
        # Both by the (relayed_at, id) index: the count scans the pending entries only, and the oldest
        # is the first of them in id order (ids are given at commit).
        count = int(self.connection.execute(sa.select(sa.func.count()).where(pending)).scalar_one())
        oldest = self.connection.execute(
            sa.select(outbox.c.created_at, outbox.c.attempts, outbox.c.last_error)
            .where(pending)
            .order_by(outbox.c.id)
            .limit(1)
        ).first()
        if oldest is None:
            return Backlog(count)
        return Backlog(count, aware(oldest.created_at), oldest.attempts, oldest.last_error)

    def mark_relayed(self, message_ids: Sequence[int], at: datetime) -> None:
        if not message_ids:
            return
        self.connection.execute(
            outbox.update()
            .where(outbox.c.id.in_(list(message_ids)))
            .values(relayed_at=at, attempts=outbox.c.attempts + 1, last_error=None)
        )

    def prune_relayed(self, before: datetime, limit: int = 10_000) -> int:
        oldest = (
            sa.select(outbox.c.id)
            .where(outbox.c.relayed_at.is_not(None), outbox.c.relayed_at < before)
            .order_by(outbox.c.relayed_at)
            .limit(limit)
        )
        return int(self.connection.execute(outbox.delete().where(outbox.c.id.in_(oldest))).rowcount)

    def mark_attempt_failed(self, message_id: int, error: str) -> None:
        self.connection.execute(
            outbox.update()
            .where(outbox.c.id == message_id)
            .values(attempts=outbox.c.attempts + 1, last_error=error)
        )
