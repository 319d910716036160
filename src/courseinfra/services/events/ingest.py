"""Ingest: read events, route each to its job, keep every event that was not processed.

Nothing is lost: a line that is not JSON, an event no job takes and an event a job rejects are all kept
in the failed-events store with their reason and their text verbatim, and the rest of the input goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from typing import BinaryIO

import orjson

from courseinfra.domain.hierarchy import holds_nul
from courseinfra.domain.job_requests import Outcome, event_action
from courseinfra.domain.quoting import json_text
from courseinfra.services.events.jobs import EventResult, IncomingEvent, Job, count_result
from courseinfra.services.events.ports import JobCounters
from courseinfra.services.failed_events.ports import FailedEvent, NewFailedEvent
from courseinfra.services.transactions import retrying
from courseinfra.services.unit_of_work import UnitOfWork

INGEST_JOB = "ingest"
DEFAULT_CHUNK = 1000
#: The longest line read as an event, in bytes (COURSEINFRA_INGEST_MAX_LINE_BYTES).
MAX_LINE_BYTES = 1 << 20
#: How much of a line over the limit is kept, as evidence (at most the limit).
KEPT_OF_A_LONG_LINE = 4096


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that cannot be read as text: ``text`` is what is kept of it (with its bytes that are not
    UTF-8 escaped, or cut short), ``code`` and ``reason`` say why."""

    text: str
    code: str
    reason: str


def _escaped(raw: bytes) -> str:
    """``raw`` as text to keep: its bytes that are not UTF-8 and its NUL bytes escaped (``\\xff``,
    ``\\x00``): no text store keeps a NUL (PostgreSQL refuses it)."""
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def read_lines(stream: BinaryIO, *, max_bytes: int = MAX_LINE_BYTES) -> Iterator[str | BadLine]:
    """The lines of a binary stream (split on line feeds only), each decoded from UTF-8; a line that is
    not UTF-8, holds a NUL byte (never in JSON) or is longer than ``max_bytes`` comes as a
    :class:`BadLine` and the stream goes on. A long line is never held whole in memory: its first bytes
    are kept, the rest is read and dropped."""
    while raw := stream.readline(max_bytes + 1):
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            size, head = len(raw), raw[: min(KEPT_OF_A_LONG_LINE, max_bytes)]
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(1 << 16)
                size += len(raw)
            yield BadLine(
                _escaped(head),
                "line-too-long",
                f"a line of {size} bytes, over the limit of {max_bytes} "
                f"(COURSEINFRA_INGEST_MAX_LINE_BYTES); its first {len(head)} bytes are kept",
            )
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield BadLine(
                _escaped(raw).rstrip("\r\n"),
                "invalid-utf8",
                f"not UTF-8: byte {error.start} ({raw[error.start]:#04x}) {error.reason}; "
                "kept with its bytes escaped",
            )
            continue
        if "\x00" in text:
            yield BadLine(
                _escaped(raw).rstrip("\r\n"),
                "nul-byte",
                f"a NUL byte (0x00) at byte {raw.index(0)}: JSON holds none; kept with it escaped as \\x00",
            )
            continue
        yield text


@dataclass
class Rejected:
    source: str
    job: str
    outcome: Outcome
    code: str
    reason: str


class RunCounters(dict[str, JobCounters]):
    """Counters of several jobs, by job name."""

    def job(self, name: str) -> JobCounters:
        return self.setdefault(name, JobCounters())

    def merge(self, other: RunCounters) -> None:
        for name, counters in other.items():
            for counter, value in counters:
                self.job(name).inc(counter, value)

    def total(self, counter: str) -> int:
        return sum(counters.counts.get(counter, 0) for counters in self.values())


@dataclass
class IngestReport:
    """What one ingest did: counters per job (this run only) and every event it did not process."""

    counters: RunCounters = field(default_factory=RunCounters)
    rejected: list[Rejected] = field(default_factory=list)


def parse_line(text: str, source: str) -> IncomingEvent | EventResult:
    """One line of JSON as an event, or the failed result that says why it is not one."""
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        return EventResult(INGEST_JOB, Outcome.FAILED, "malformed-json", f"{source}: invalid JSON: {error}")
    if not isinstance(event, dict):
        return EventResult(
            INGEST_JOB,
            Outcome.FAILED,
            "not-an-object",
            f"{source}: an event is a JSON object, not {type(event).__name__}",
        )
    if "\\u0000" in text and holds_nul(event):
        return EventResult(
            INGEST_JOB,
            Outcome.FAILED,
            "nul-character",
            f"{source}: the event holds a NUL character (\\u0000), which no store keeps",
        )
    return IncomingEvent(payload=text, event=event, source=source)


class Router:
    """Routes each event to the first job that accepts it; jobs are tried in the order given."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        self.jobs = list(jobs)

    def route(self, event: IncomingEvent) -> Job | None:
        return next((job for job in self.jobs if job.accepts(event.event)), None)

    def process(self, events: Sequence[IncomingEvent], counters: RunCounters) -> list[EventResult]:
        """Process ``events``: each job gets its own events in arrival order, in one call."""
        results: list[EventResult | None] = [None] * len(events)
        by_job: dict[str, tuple[Job, list[int]]] = {}
        for position, incoming in enumerate(events):
            job = self.route(incoming)
            if job is None:
                action = event_action(incoming.event)
                unrouted = EventResult(
                    INGEST_JOB, Outcome.SKIPPED, "no-job", f"no job takes action {json_text(action)}"
                )
                count_result(counters.job(INGEST_JOB), unrouted)
                results[position] = unrouted
            else:
                by_job.setdefault(job.name, (job, []))[1].append(position)
        for job, positions in by_job.values():
            job_results = job.process([events[p] for p in positions], counters.job(job.name))
            for position, result in zip(positions, job_results, strict=True):
                results[position] = result
        return [result for result in results if result is not None]


def ingest(
    lines: Iterable[str | BadLine],
    source: str,
    router: Router,
    uow_factory: Callable[[], UnitOfWork],
    *,
    chunk_size: int = DEFAULT_CHUNK,
    on_progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> IngestReport:
    """Process JSON lines (blank lines ignored; a :class:`BadLine` of :func:`read_lines` is kept as a
    failure) in chunks; every chunk is finished, its rejections kept and its counters added before the
    next is read. Each line's source is ``source:N``, N its line number."""
    return ingest_sourced(
        ((f"{source}:{number}", line) for number, line in enumerate(lines, start=1)),
        router,
        uow_factory,
        chunk_size=chunk_size,
        on_progress=on_progress,
        clock=clock,
    )


def ingest_sourced(
    lines: Iterable[tuple[str, str | BadLine]],
    router: Router,
    uow_factory: Callable[[], UnitOfWork],
    *,
    chunk_size: int = DEFAULT_CHUNK,
    on_progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> IngestReport:
    """:func:`ingest` over lines that each name their own source (``file:line``): the lines of several
    files, or a file's lines without those between (a Flink subtask's share). Rejections are reported
    and kept in input order."""
    report = IngestReport()
    sourced = (item for item in lines if isinstance(item[1], BadLine) or item[1].strip())
    while chunk := list(islice(sourced, chunk_size)):
        counters = RunCounters()
        events: list[IncomingEvent] = []
        positions: list[int] = []
        rejected: list[tuple[int, str, str, EventResult]] = []
        for position, (line_source, line) in enumerate(chunk):
            if isinstance(line, BadLine):
                text = line.text
                parsed: IncomingEvent | EventResult = EventResult(
                    INGEST_JOB, Outcome.FAILED, line.code, f"{line_source}: {line.reason}"
                )
            else:
                text = line.rstrip("\r\n")
                parsed = parse_line(text, line_source)
            if isinstance(parsed, EventResult):
                count_result(counters.job(INGEST_JOB), parsed)
                rejected.append((position, text, line_source, parsed))
            else:
                events.append(parsed)
                positions.append(position)
        for position, incoming, result in zip(
            positions, events, router.process(events, counters), strict=True
        ):
            if result.outcome is not Outcome.PROCESSED:
                rejected.append((position, incoming.payload, incoming.source, result))
        kept = [
            (payload, where, result) for _, payload, where, result in sorted(rejected, key=lambda r: r[0])
        ]
        keep_rejected(kept, counters, uow_factory, clock())
        report.counters.merge(counters)
        report.rejected.extend(Rejected(src, r.job, r.outcome, r.code, r.reason) for _, src, r in kept)
        if on_progress:
            on_progress(len(chunk))
    return report


def keep_rejected(
    kept: Sequence[tuple[str, str, EventResult]],
    counters: RunCounters,
    uow_factory: Callable[[], UnitOfWork],
    at: datetime,
) -> None:
    """Store rejected events (payload, source, result) and add ``counters``, in one transaction; those
    a job stored itself, with its outcome, are left alone."""

    def store() -> None:
        with uow_factory() as uow:
            for payload, source, result in kept:
                if not result.kept:
                    uow.failed_events.add(failed_event(payload, source, result), at)
            add_counters(uow, counters)
            uow.commit()

    retrying(store)


def add_counters(uow: UnitOfWork, counters: RunCounters) -> None:
    """Add the counters that their job did not store itself."""
    for job, job_counters in sorted(counters.items()):  # in one order: see CounterStore.add
        if not job_counters.stored:
            uow.counters.add(job, job_counters.counts)


def failed_event(payload: str, source: str, result: EventResult) -> NewFailedEvent:
    return NewFailedEvent(result.job, result.outcome, result.code, result.reason, payload, source)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    event_id: int
    resolved: bool
    code: str
    reason: str


def replay_failed(
    events: Sequence[FailedEvent],
    router: Router,
    uow_factory: Callable[[], UnitOfWork],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[ReplayResult]:
    """Run kept events again through the jobs. A processed one is marked resolved; one rejected again
    keeps its place with the new reason and one more attempt. Nothing new is added to the store."""
    counters = RunCounters()
    outcomes: list[ReplayResult] = []
    for kept in events:
        parsed = parse_line(kept.payload, kept.source)
        if isinstance(parsed, IncomingEvent):
            result = router.process([replace(parsed, replayed=True)], counters)[0]
        else:
            result = parsed
        resolved = result.outcome is Outcome.PROCESSED
        outcomes.append(ReplayResult(kept.id, resolved, result.code, result.reason))
    at = clock()

    def record() -> None:
        with uow_factory() as uow:
            for outcome in outcomes:
                uow.failed_events.record_attempt(
                    outcome.event_id,
                    at=at,
                    resolved=outcome.resolved,
                    code=outcome.code,
                    reason=outcome.reason,
                )
            add_counters(uow, counters)
            uow.note(
                "failed-events.replay",
                "failed-events",
                events=[outcome.event_id for outcome in outcomes][:100],
                resolved=sum(outcome.resolved for outcome in outcomes),
                replayed=len(outcomes),
            )
            uow.commit()

    retrying(record)
    return outcomes
