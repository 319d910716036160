"""The ports of the AUDIT log."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from courseinfra.domain.progress import (
    AuditAction,
    AuditObject,
    AuditRecord,
    EnrolmentKey,
    audit_telemetry,
)


class AuditEntry(NamedTuple):
    """An emitted AUDIT event as the log keeps it: its key's fields (the object type and the action as
    their values), the course's channel and the emission time (``ets``: the same in milliseconds). A
    tuple: the relay reads millions of them."""

    id: int
    user_id: str
    course_id: str
    batch_id: str
    object_type: str
    object_id: str
    action: str
    channel: str | None
    emitted_at: datetime
    ets: int

    @property
    def record(self) -> AuditRecord:
        return AuditRecord(
            EnrolmentKey(self.user_id, self.course_id, self.batch_id),
            AuditObject(self.object_type),
            self.object_id,
            AuditAction(self.action),
        )

    @property
    def telemetry(self) -> dict[str, Any]:
        """The event in the telemetry v3 AUDIT shape, the same on every read."""
        return audit_telemetry(
            self.user_id,
            self.course_id,
            self.batch_id,
            self.object_type,
            self.object_id,
            self.action,
            self.ets,
            self.channel,
        )


class AuditLog(abc.ABC):
    """The AUDIT events emitted, in commit order, appended in the transaction of the state transitions
    that emitted them (what makes each emitted once is the enrolment's state, not this log).

    The log is also the AUDIT events' outbox: entry ids grow in commit order, so a reader that has seen
    every entry up to id N never sees a later commit with an id at or below N, and a relay needs only a
    cursor (see :class:`RelayCursors`), not a mark per entry. Ids are not dense.
    """

    @abc.abstractmethod
    def append(self, records: Sequence[tuple[AuditRecord, str | None]], at: datetime) -> None:
        """Append the records (each with its course's channel), in order."""

    @abc.abstractmethod
    def read_after(self, after_id: int, at_least: int) -> list[AuditEntry]:
        """The entries after ``after_id`` in id order: at least ``at_least`` where there are so many,
        and as many more as end the page last read (an append writes a page per course): what a relay
        delivers at a time."""

    @abc.abstractmethod
    def pending_after(self, after_id: int) -> tuple[int, datetime | None]:
        """How many entries follow ``after_id`` (the relay's cursor), and when the first of them was
        emitted (None: none)."""

    @abc.abstractmethod
    def prune(self, *, through_id: int, before: datetime, limit: int = 100) -> int:
        """Delete up to ``limit`` appends, each with every entry at or before ``through_id`` (the relay's
        cursor) and made before ``before``; return how many entries were deleted."""

    @abc.abstractmethod
    def list(
        self,
        *,
        user_id: str | None = None,
        course_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """At most ``limit`` entries after ``after_id`` in id order, of the user and the course given.
        Filtering by user reads every entry kept (of the course, where one is given)."""
