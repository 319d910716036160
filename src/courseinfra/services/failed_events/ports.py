"""The ports of failed events: what the jobs did not process, kept until replayed."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from courseinfra.domain.job_requests import Outcome


@dataclass(frozen=True, slots=True)
class NewFailedEvent:
    job: str
    outcome: Outcome
    code: str
    reason: str
    payload: str
    source: str


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """An event a job did not process, kept with its reason until it is replayed successfully."""

    id: int
    job: str
    outcome: Outcome
    code: str
    reason: str
    payload: str
    source: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime
    resolved_at: datetime | None


class FailedEventStore(abc.ABC):
    """Events the jobs did not process. An event is identified by its job and its payload text: there
    is at most one open (unresolved) entry per job and payload, whatever its outcome."""

    @abc.abstractmethod
    def add(self, event: NewFailedEvent, at: datetime) -> int:
        """Keep ``event`` and return the id of its open entry.

        The first time, a new entry with one attempt. While an entry of the same job and payload is
        open, that entry instead: one more attempt, and the outcome, code, reason, source and
        ``last_attempt_at`` of this time (its id and ``created_at`` stay). A resolved entry absorbs
        nothing: the same payload kept after its resolution opens a new entry."""

    @abc.abstractmethod
    def get(self, event_id: int) -> FailedEvent | None: ...

    @abc.abstractmethod
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
        """Events in ascending id order, after ``after_id`` (for paging); of one job and one code (the
        reason's kind, ``hierarchy-not-found``) when given."""

    @abc.abstractmethod
    def record_attempt(self, event_id: int, *, at: datetime, resolved: bool, code: str, reason: str) -> None:
        """Count a replay: resolved, or still failing with ``code`` and ``reason``."""

    @abc.abstractmethod
    def count_open(self) -> dict[str, int]:
        """Unresolved failed (not skipped) events, by job."""

    @abc.abstractmethod
    def last_id(self) -> int:
        """The highest id kept so far (0 when none): a new entry has a higher id (an event kept again
        while its entry is open keeps that entry's id)."""
