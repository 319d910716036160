"""Ingest a file with several worker processes, one per partition of the enrolments.

One process is bound by one core's Python (parsing, planning, building rows). Each worker takes the
events of its partition (:func:`~courseinfra.domain.job_requests.partition_of`): an enrolment's events
stay in one worker and in file order, which is all the aggregator needs, since enrolments do not share
state. Workers write through their own connections; the stores already take concurrent writers (SQLite
queues them behind its write lock, the AUDIT log assigns ids in commit order, ADR 0009). The parent
process relays the outboxes while the workers run (the relay is the job's other half: on a machine of
two cores, one worker and the relay overlap), and once more when they are done. Workers do not relay
on commit (ADR 0019): relaying is the parent's. ADR 0013.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import orjson

from courseinfra.bootstrap import bootstrap
from courseinfra.domain.job_requests import partition_of
from courseinfra.services.events.ingest import BadLine, IngestReport, Rejected, ingest, read_lines
from courseinfra.settings import Settings

# The count of lines done, shared with the parent; set in each worker by the pool's initializer.
_lines_done: list[Synchronized[int]] = []


def only_partition(
    lines: Iterable[str | BadLine], partition: int, partitions: int
) -> Iterator[str | BadLine]:
    """The lines of ``partition``; every other line is replaced by an empty one (ingest skips it), so
    that line numbers stay those of the input. A line that is not a JSON object (or not text) is in
    partition 0: exactly one worker keeps it."""
    if partitions == 1:
        yield from lines
        return
    for text in lines:
        if isinstance(text, BadLine):
            yield text if partition == 0 else ""
            continue
        try:
            event = orjson.loads(text) if text.strip() else None
        except orjson.JSONDecodeError:
            event = None
        owner = partition_of(event, partitions) if isinstance(event, dict) else 0
        yield text if owner == partition else ""


def ingest_in_workers(
    settings: Settings,
    path: Path,
    source: str,
    workers: int,
    *,
    chunk_size: int,
    on_progress: Callable[[int], None] | None = None,
    relay: Callable[[], int] | None = None,
) -> IngestReport:
    """Ingest the JSON lines of ``path`` with ``workers`` processes (each bootstraps its own application
    from ``settings``) and return the runs' reports merged, rejections in line order. The schema must be
    migrated already: the caller bootstraps first. ``relay`` (the caller's ``App.relay``) is called
    over and over while the workers run, and once when they are done."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    context = multiprocessing.get_context("spawn")
    done = context.Value("q", 0)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_share_progress, initargs=(done,)
    ) as pool:
        futures = [
            pool.submit(_ingest_partition, settings, str(path), source, partition, workers, chunk_size)
            for partition in range(workers)
        ]
        reported = 0
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
            if relay is not None and pending:
                relay()
            if on_progress is not None and (current := done.value) != reported:
                on_progress(current - reported)
                reported = current
            if any(future.exception() is not None for future in futures if future.done()):
                for future in pending:
                    future.cancel()
                break
        reports = [future.result() for future in futures]  # raises the first worker's error
    if relay is not None:
        relay()
    merged = IngestReport()
    for report in reports:
        merged.counters.merge(report.counters)
        merged.rejected.extend(report.rejected)
    merged.rejected.sort(key=_line_number)
    return merged


def _share_progress(done: Synchronized[int]) -> None:
    _lines_done[:] = [done]


def _advance(lines: int) -> None:
    for done in _lines_done:
        with done.get_lock():
            done.value += lines


def _ingest_partition(
    settings: Settings, path: str, source: str, partition: int, partitions: int, chunk_size: int
) -> IngestReport:
    app = bootstrap(settings, publish_on_commit=False)  # the parent process relays
    try:
        with open(path, "rb") as stream:
            return ingest(
                only_partition(
                    read_lines(stream, max_bytes=settings.ingest_max_line_bytes), partition, partitions
                ),
                source,
                app.router,
                app.uow_factory,
                chunk_size=chunk_size,
                on_progress=_advance,
            )
    finally:
        app.close()


def _line_number(rejected: Rejected) -> int:
    """The line number of a rejection's source (``name:N``)."""
    _, _, number = rejected.source.rpartition(":")
    return int(number) if number.isdigit() else 0
