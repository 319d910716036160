"""The SQL AUDIT log: one row (a page) per transaction and course, its entries a compact JSON array."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from courseinfra.adapters.sql.store import aware
from courseinfra.adapters.sql.tables import audit_pages
from courseinfra.domain.progress import AuditRecord
from courseinfra.services.audit.ports import AuditEntry, AuditLog

#: An entry's id is (page id << ENTRY_BITS) + its index in the page: ids grow with the page ids.
ENTRY_BITS = 20
PAGE_ENTRIES = 1 << ENTRY_BITS
# The PostgreSQL advisory lock that orders the AUDIT log's commits; any constant unused elsewhere.
AUDIT_LOG_LOCK = 0x61756469
#: Pages read per query while listing.
PAGES_READ = 16


def entry_id(page_id: int, index: int) -> int:
    return (page_id << ENTRY_BITS) + index


class SqlAuditLog(AuditLog):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def append(self, records: Sequence[tuple[AuditRecord, str | None]], at: datetime) -> None:
        if not records:
            return
        if self.connection.dialect.name == "postgresql":
            # Ids come from a sequence when the row is inserted, but become visible at commit: without
            # this lock, held to the end of the transaction, a relay could pass page N+1 of a fast
            # transaction while page N of a slower one is still uncommitted, and never deliver N.
            # SQLite needs nothing: it has one writer at a time.
            self.connection.execute(sa.select(sa.func.pg_advisory_xact_lock(AUDIT_LOG_LOCK)))
        groups: dict[tuple[str, str | None], list[list[str]]] = {}
        for record, channel in records:
            e = record.enrolment
            groups.setdefault((e.course_id, channel), []).append(
                [e.user_id, e.batch_id, record.object_type.value, record.object_id, record.action.value]
            )
        rows = [
            {
                "courseid": course,
                "channel": channel,
                "emitted_at": at,
                "size": len(entries[start : start + PAGE_ENTRIES]),
                "entries": orjson.dumps(entries[start : start + PAGE_ENTRIES]),
            }
            for (course, channel), entries in groups.items()
            for start in range(0, len(entries), PAGE_ENTRIES)
        ]
        self.connection.execute(audit_pages.insert(), rows)

    def _pages(self, after_id: int, course_id: str | None) -> Iterator[sa.Row[Any]]:
        """The pages holding entries after ``after_id``, in id order, a few per query."""
        page_id = after_id >> ENTRY_BITS
        first = True
        while True:
            query = (
                sa.select(audit_pages)
                .where(audit_pages.c.id >= page_id if first else audit_pages.c.id > page_id)
                .order_by(audit_pages.c.id)
                .limit(PAGES_READ)
            )
            if course_id is not None:
                query = query.where(audit_pages.c.courseid == course_id)
            rows = self.connection.execute(query).all()
            yield from rows
            if len(rows) < PAGES_READ:
                return
            page_id, first = rows[-1].id, False

    @staticmethod
    def _entries(page: sa.Row[Any], after_id: int, user_id: str | None) -> Iterator[AuditEntry]:
        stamp = aware(page.emitted_at)
        ets = int(stamp.timestamp() * 1000)
        base = entry_id(page.id, 0)
        course, channel = page.courseid, page.channel
        for index, (user, batch, object_type, object_id, action) in enumerate(orjson.loads(page.entries)):
            if base + index <= after_id or (user_id is not None and user != user_id):
                continue
            yield AuditEntry(
                base + index, user, course, batch, object_type, object_id, action, channel, stamp, ets
            )

    def read_after(self, after_id: int, at_least: int) -> list[AuditEntry]:
        found: list[AuditEntry] = []
        for page in self._pages(after_id, None):
            found += self._entries(page, after_id, None)
            if len(found) >= at_least:
                break
        return found

    def pending_after(self, after_id: int) -> tuple[int, datetime | None]:
        p = audit_pages.c
        page, index = divmod(after_id, PAGE_ENTRIES)
        # The cursor's own page counts the entries after its index; every later page counts whole.
        left = sa.case((p.id == page, p.size - 1 - index), else_=p.size)
        row = self.connection.execute(
            sa.select(sa.func.coalesce(sa.func.sum(left), 0), sa.func.min(p.id)).where(
                sa.or_(p.id > page, sa.and_(p.id == page, p.size - 1 > index))
            )
        ).one()
        count, first = int(row[0]), row[1]
        if first is None:
            return 0, None
        emitted = self.connection.execute(sa.select(p.emitted_at).where(p.id == first)).scalar_one()
        return count, aware(emitted)

    def prune(self, *, through_id: int, before: datetime, limit: int = 100) -> int:
        p = audit_pages.c
        # Every page before the cursor's, and the cursor's own once it ends there: a range of the key,
        # since the relay prunes after every pass.
        page, index = divmod(through_id, PAGE_ENTRIES)
        relayed = (
            sa.select(p.id, p.size)
            .where(sa.or_(p.id < page, sa.and_(p.id == page, p.size - 1 <= index)), p.emitted_at < before)
            .order_by(p.id)
            .limit(limit)
        )
        pages = self.connection.execute(relayed).all()
        if not pages:
            return 0
        self.connection.execute(audit_pages.delete().where(p.id.in_([page.id for page in pages])))
        return sum(page.size for page in pages)

    def list(
        self,
        *,
        user_id: str | None = None,
        course_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        found: list[AuditEntry] = []
        if limit <= 0:
            return found
        for page in self._pages(after_id, course_id):
            for entry in self._entries(page, after_id, user_id):
                found.append(entry)
                if len(found) == limit:
                    return found
        return found
