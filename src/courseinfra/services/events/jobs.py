"""What every job shares: the event it receives, the result it returns, and the counters it keeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from courseinfra.domain.job_requests import Outcome, Rejection
from courseinfra.services.events.ports import JobCounters

TOTAL = "total"
SUCCESS = "success"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """An event as received: its text (kept verbatim for the failed-events store), its parsed object and
    where it came from (``file.jsonl:12``, ``api``, ``outbox:7``). ``replayed``: it is a kept event run
    again, whose entry the replay updates (a job does not keep it a second time)."""

    payload: str
    event: Mapping[str, Any]
    source: str
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class EventResult:
    """What a job did with one event. ``kept``: the job stored the event in the failed-events store
    itself, in the transaction of its outcome (the caller keeps every other rejected one)."""

    job: str
    outcome: Outcome
    code: str = "ok"
    reason: str = ""
    kept: bool = False

    @classmethod
    def rejected(cls, job: str, rejection: Rejection) -> EventResult:
        return cls(job, rejection.outcome, rejection.code, rejection.reason)


class Job(Protocol):
    """A stream job: it takes the events :meth:`accepts` says are its own, in arrival order, and returns
    one result per event. It raises only when its infrastructure fails (the whole batch is then retried);
    bad events are results, never exceptions."""

    name: str

    def accepts(self, event: Mapping[str, Any]) -> bool: ...

    def process(self, events: Sequence[IncomingEvent], counters: JobCounters) -> list[EventResult]: ...


def count_result(counters: JobCounters, result: EventResult) -> None:
    counters.inc(TOTAL)
    counters.inc(
        {Outcome.PROCESSED: SUCCESS, Outcome.SKIPPED: SKIPPED, Outcome.FAILED: FAILED}[result.outcome]
    )
