"""The jobs as PyFlink DataStream jobs (``courseinfra flink run aggregator|relation-cache``, ADR 0023).

The only module that imports PyFlink (the ``courseinfra[flink]`` extra). The job reads a file, or every
file of a folder (``follow``: and the files that appear in it later), line by line with Flink's
filesystem source, which gives each line its file. One subtask numbers each file's lines (keyed state:
the numbers survive a restore) and keys each event by its enrolment (aggregator:
:func:`~courseinfra.domain.job_requests.partition_of`, the key ``ingest --workers`` partitions by) or its
published root (relation cache), one key per parallel subtask. Each subtask buffers its lines in keyed
state and hands them, in micro-batches, to the same :func:`~courseinfra.services.events.ingest.ingest`
write path the embedded runner uses, through an application bootstrapped in the subtask from the
command's settings.

Exactly-once and the keeping of bad events are the database's and ingest's, as for ``ingest --workers``.
With checkpoints, Flink's checkpoint holds what is not yet written: the source's position, the line
numbers and the buffered lines; a run restored from one writes the lines after it again, which the
database applies once (ADR 0023). Each micro-batch's report comes back to the command, which relays the
outboxes while the job runs and once at the end (the subtasks do not relay, as ``ingest --workers``
processes do not).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from py4j.protocol import Py4JJavaError
from pyflink.common import Configuration, Types
from pyflink.datastream import (
    DataStream,
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.job_requests import Outcome, partition_of, root_partition_of
from courseinfra.entrypoints.flink_options import FlinkOptions, mark_finished
from courseinfra.services.events.ingest import (
    BadLine,
    IngestReport,
    Rejected,
    RunCounters,
    ingest_sourced,
    read_lines,
)
from courseinfra.settings import Settings

with warnings.catch_warnings():
    # PyFlink's table package uses at import a class of its own that it deprecates (TableSchema).
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyflink.table import StreamTableEnvironment

#: Flink's key groups (its maximum parallelism): fixed, so that a checkpoint restores into any run.
KEY_GROUPS = 128
#: Flink's watermark at the end of a bounded input; a timer at it fires once every line is in.
END_OF_INPUT = (1 << 63) - 1
#: Milliseconds a buffered line waits at most before it is written (a followed folder's trickle).
FLUSH_AFTER_MS = 1000
#: Seconds between two relays of the command while the job runs.
RELAY_EVERY = 1.0


def _file_bytes(text: str) -> bytes:
    """A line as the file's bytes: the source decodes it as ISO-8859-1, one character per byte, so that
    no byte is lost or replaced before :func:`read_lines` judges it as the embedded runner does."""
    return text.encode("latin-1")


#: A job's key of an event: the aggregator's enrolment, the relation cache updater's root.
KEYED_BY: dict[str, Callable[[Mapping[str, Any], int], int]] = {
    "aggregator": partition_of,
    "relation-cache": root_partition_of,
}


def subtask_keys(parallelism: int) -> list[int]:
    """For each parallel subtask, a key that Flink assigns to it (its key group falls in the subtask's
    range), so that a subtask buffers all its lines under one key and writes them in micro-batches as
    large as ingest's chunks. Asked of Flink itself (the JVM), whose hash of a key this mirrors."""
    jvm = get_gateway().jvm
    assign = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment.assignKeyToParallelOperator
    keys: dict[int, int] = {}
    candidate = 0
    while len(keys) < parallelism:
        row = jvm.org.apache.flink.types.Row.withPositions(1)
        row.setField(0, candidate)  # PyFlink keys by Row(key): hash that, as its key selector does
        keys.setdefault(assign(row, KEY_GROUPS, parallelism), candidate)
        candidate += 1
    return [keys[subtask] for subtask in range(parallelism)]


class NumberLines(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by file: gives each line ``file:N`` (its file relative to the source, N its line number,
    kept in keyed state so that a restore goes on counting) and the key of its subtask
    (:data:`KEYED_BY` over the subtasks, :func:`subtask_keys`)."""

    def __init__(self, job: str, root: str, keys: list[int]) -> None:
        self.keyed_by = KEYED_BY[job]
        self.root = root
        self.keys = keys

    def open(self, runtime_context: RuntimeContext) -> None:
        self.numbers = runtime_context.get_state(ValueStateDescriptor("line-numbers", Types.LONG()))
        # This subtask's files: their names and numbers so far, beside the state (read once per file).
        self.files: dict[str, tuple[str, int]] = {}

    def process_element(self, row: Any, ctx: KeyedProcessFunction.Context) -> Iterator[tuple[int, str, str]]:
        text, path = row[0] or "", row[1]
        label, number = self.files.get(path) or (_label(path, self.root), self.numbers.value() or 0)
        number += 1
        self.files[path] = (label, number)
        self.numbers.update(number)
        try:
            event = orjson.loads(_file_bytes(text))
        except orjson.JSONDecodeError:
            event = None
        bucket = self.keyed_by(event, len(self.keys)) if isinstance(event, dict) else 0
        yield self.keys[bucket], f"{label}:{number}", text


def _label(path: str, root: str) -> str:
    """A file's name in the kept events' sources: relative to the folder read (a file read alone: its
    name, as ``ingest`` names it)."""
    relative = os.path.relpath(path.removeprefix("file:"), root)
    return relative if not relative.startswith("..") else path


class IngestInMicroBatches(KeyedProcessFunction):  # type: ignore[misc]
    """Buffers the lines of its key (its subtask's share, each enrolment's in file order) in keyed
    state, and ingests them every ``chunk_size`` lines, at most :data:`FLUSH_AFTER_MS` after the first
    came, and at the end of the input, each micro-batch in one transaction of ingest's; yields each
    micro-batch's report as JSON (:func:`report_json`), or appends it to a file of ``reports_dir``
    (one per subtask and run) when given."""

    def __init__(self, settings: Settings, reports_dir: str | None = None) -> None:
        self.settings = settings
        self.reports_dir = reports_dir
        self.app: App | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.lines = runtime_context.get_list_state(
            ListStateDescriptor("buffered", Types.TUPLE([Types.STRING(), Types.STRING()]))
        )
        # Lines buffered per key, beside the state: counted from it once per key after a (re)start.
        self.counts: dict[int, int] = {}
        self.app = bootstrap(self.settings, publish_on_commit=False)  # the command relays
        self.report_file = (
            Path(self.reports_dir, f"{os.getpid()}-{uuid.uuid4().hex}.jsonl") if self.reports_dir else None
        )

    def close(self) -> None:
        # Lines still buffered were not written: a restore from the last checkpoint writes them, and
        # without one a run again does, exactly once (the database's guarantee).
        if self.app is not None:
            self.app.close()
            self.app = None

    def process_element(
        self, value: tuple[int, str, str], ctx: KeyedProcessFunction.Context
    ) -> Iterator[str]:
        key = value[0]
        count = self.counts[key] + 1 if key in self.counts else sum(1 for _ in self.lines.get()) + 1
        self.counts[key] = count
        self.lines.add((value[1], value[2]))
        if count == 1:
            timers = ctx.timer_service()
            timers.register_processing_time_timer(timers.current_processing_time() + FLUSH_AFTER_MS)
            timers.register_event_time_timer(END_OF_INPUT - 1)
        if count >= self.settings.ingest_chunk_size:
            yield from self.flush(key)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[str]:
        key = ctx.get_current_key()
        if self.counts.get(key, 1):  # unknown after a restore: the state may hold lines
            yield from self.flush(key)

    def flush(self, key: int) -> Iterator[str]:
        assert self.app is not None, "open() bootstraps the application"
        lines = list(self.lines.get())
        self.lines.clear()
        self.counts[key] = 0
        if not lines:
            return
        max_bytes = self.settings.ingest_max_line_bytes
        report = ingest_sourced(
            ((where, _judged(text, max_bytes)) for where, text in lines),
            self.app.router,
            self.app.uow_factory,
            chunk_size=max(len(lines), 1),
        )
        if self.report_file is None:
            yield report_json(report)
        else:
            with self.report_file.open("a", encoding="utf-8") as reports:
                reports.write(report_json(report) + "\n")


def _judged(text: str, max_bytes: int) -> str | BadLine:
    """A line as :func:`read_lines` reads it from the file (not UTF-8, a NUL byte, too long)."""
    return next(read_lines(io.BytesIO(_file_bytes(text) + b"\n"), max_bytes=max_bytes))


def report_json(report: IngestReport) -> str:
    return orjson.dumps(
        {
            "counters": {job: counters.counts for job, counters in report.counters.items()},
            "rejected": [[r.source, r.job, r.outcome.value, r.code, r.reason] for r in report.rejected],
        }
    ).decode()


def merge_report_json(into: IngestReport, text: str) -> None:
    shape: dict[str, Any] = orjson.loads(text)
    counters = RunCounters()
    for job, counts in shape["counters"].items():
        for counter, value in counts.items():
            counters.job(job).inc(counter, value)
    into.counters.merge(counters)
    into.rejected.extend(
        Rejected(source, job, Outcome(outcome), code, reason)
        for source, job, outcome, code, reason in shape["rejected"]
    )


def environment(options: FlinkOptions, resume_from: Path | None = None) -> StreamExecutionEnvironment:
    """A local MiniCluster, or the cluster whose REST endpoint ``options.jobmanager`` names; with
    checkpoints when ``options.checkpoint_dir`` is set, restored from ``resume_from`` when given."""
    config = Configuration()
    config.set_string(
        "python.execution-mode", options.execution_mode or ("process" if options.jobmanager else "thread")
    )
    python = options.python or (None if options.jobmanager else sys.executable)
    if python:
        # Otherwise the Java side starts the workers with the plain `python` on PATH.
        config.set_string("python.executable", python)
    # A failing job fails the command (the operator runs it again, from its checkpoint), rather than
    # restarting without end as Flink does by default once checkpoints are on.
    config.set_string("restart-strategy.type", "none")
    config.set_string("pipeline.max-parallelism", str(KEY_GROUPS))
    if options.checkpoint_dir is not None:
        config.set_string("execution.checkpointing.interval", f"{int(options.checkpoint_every * 1000)} ms")
        config.set_string("execution.checkpointing.storage", "filesystem")
        config.set_string("execution.checkpointing.dir", options.checkpoint_dir.resolve().as_uri())
        config.set_string(
            "execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION"
        )
    if resume_from is not None:
        config.set_string("execution.state-recovery.path", resume_from.resolve().as_uri())
    if not options.jobmanager:
        # Thread mode embeds the base interpreter in the JVM, which sees neither this virtual
        # environment's packages nor an editable install: give it this process's module path.
        config.set_string("python.pythonpath", os.pathsep.join(p for p in sys.path if p and os.path.isdir(p)))
        env = StreamExecutionEnvironment.get_execution_environment(config)
    else:
        host, _, port = options.jobmanager.rpartition(":")
        config.set_string("execution.target", "remote")
        config.set_string("rest.address", host)
        config.set_string("rest.port", port)
        # A cluster has the Python operators only if flink-python is in its lib/ (Flink ships it in opt/).
        config.set_string("pipeline.jars", ";".join(p.as_uri() for p in _flink_python_jars()))
        # get_execution_environment makes a local environment whatever the target: build one from the
        # configuration, whose target picks the remote executor.
        java = get_gateway().jvm.org.apache.flink.streaming.api.environment.StreamExecutionEnvironment
        env = StreamExecutionEnvironment(java(config._j_configuration))
    env.set_parallelism(options.parallelism)
    return env


def _flink_python_jars() -> list[Path]:
    """The flink-python jar of this PyFlink, shipped with a job submitted to a cluster."""
    import pyflink

    return sorted((Path(pyflink.__file__).parent / "opt").glob("flink-python-*.jar"))


def run_job(
    job: str,
    settings: Settings,
    path: Path,
    options: FlinkOptions,
    *,
    relay: Callable[[], int] | None = None,
    resume_from: Path | None = None,
) -> IngestReport:
    """Run ``job``'s Flink job (a name of :data:`KEYED_BY`: events keyed by enrolment or by root) over
    the JSON lines of ``path`` (a file, or the files of a folder), every event routed to its job as
    ``ingest`` routes it, and return the micro-batches' reports merged, rejections in file and line
    order. The schema must be migrated already (the caller bootstraps first). ``relay`` (the caller's
    ``App.relay``) is called every second or so while reports come in, and once at the end.
    ``resume_from``: a checkpoint of the same job, source and parallelism (:func:`checkpoint_to_resume`)."""
    # py4j logs a stop (Ctrl-C, SIGINT) with a traceback on the root logger before raising it; the
    # command says it in one line.
    logging.getLogger().addFilter(_not_a_stop)
    env = environment(options, resume_from)
    tables = StreamTableEnvironment.create(env)
    root = str((path if path.is_dir() else path.parent).resolve())
    monitor = ", 'source.monitor-interval' = '1 s'" if options.follow else ""
    # The filesystem connector's raw format reads line by line and names each line's file; ISO-8859-1
    # keeps every byte as one character (see _file_bytes).
    tables.execute_sql(
        f"""CREATE TEMPORARY TABLE json_lines (
              line STRING,
              path STRING NOT NULL METADATA FROM 'file.path' VIRTUAL
            ) WITH (
              'connector' = 'filesystem', 'path' = '{path.resolve().as_uri()}',
              'format' = 'raw', 'raw.charset' = 'ISO-8859-1'{monitor}
            )"""
    )
    numbered = (
        tables.to_data_stream(tables.from_path("json_lines"))
        .key_by(lambda row: row[1], key_type=Types.STRING())
        .process(
            NumberLines(job, root, subtask_keys(options.parallelism)),
            output_type=Types.TUPLE([Types.INT(), Types.STRING(), Types.STRING()]),
        )
        .uid("courseinfra-number-lines")
        .set_parallelism(1)
    )
    # With checkpoints, reports go to files: the sink of collected results keeps its position in a
    # checkpoint, which the client of a resumed run cannot take over.
    reports_dir = options.checkpoint_dir / "reports" / uuid.uuid4().hex if options.checkpoint_dir else None
    reports = (
        numbered.key_by(lambda row: row[0], key_type=Types.INT())
        .process(
            IngestInMicroBatches(settings, str(reports_dir) if reports_dir else None),
            output_type=Types.STRING(),
        )
        .uid("courseinfra-micro-batches")
    )
    name = f"courseinfra {job} {path.name}"
    try:
        if reports_dir is None:
            merged = _collected(reports, name, relay)
        else:
            reports_dir.mkdir(parents=True)
            reports.print()  # nothing: the reports are in files
            merged = _run_with_reports_in(reports_dir, env, name, relay)
    except Py4JJavaError as error:
        raise JobFailed(_root_cause(error)) from None
    if relay is not None:
        relay()
    mark_finished(options)
    merged.rejected.sort(key=_file_and_line)
    return merged


class JobFailed(Exception):
    """The Flink job failed; the message is its root cause."""


def _collected(reports: DataStream, name: str, relay: Callable[[], int] | None) -> IngestReport:
    """Run the job, its reports collected by this process, relaying every second or so meanwhile."""
    merged = IngestReport()
    last_relay = time.monotonic()
    with reports.execute_and_collect(name) as results:
        for text in results:
            merge_report_json(merged, text)
            if relay is not None and time.monotonic() - last_relay >= RELAY_EVERY:
                relay()
                last_relay = time.monotonic()
    return merged


def _run_with_reports_in(
    reports_dir: Path, env: StreamExecutionEnvironment, name: str, relay: Callable[[], int] | None
) -> IngestReport:
    """Run the job, relaying every second until it ends, then merge the reports its subtasks wrote to
    ``reports_dir`` (removed after). Stopped (KeyboardInterrupt): the job is cancelled, its latest
    checkpoint kept."""
    client = env.execute_async(name)
    try:
        # Asked once: a local MiniCluster shuts down with its job, and cannot be asked after.
        outcome = client.get_job_execution_result()
        while not outcome.done():
            time.sleep(RELAY_EVERY)
            if relay is not None:
                relay()
        outcome.result()
    except KeyboardInterrupt:
        client.cancel()
        raise
    merged = IngestReport()
    for file in sorted(reports_dir.glob("*.jsonl")):
        for text in file.read_text(encoding="utf-8").splitlines():
            merge_report_json(merged, text)
    shutil.rmtree(reports_dir)
    return merged


def _root_cause(error: Py4JJavaError) -> str:
    """The innermost cause of a Java exception, in one line."""
    cause = error.java_exception
    while cause.getCause() is not None:
        cause = cause.getCause()
    return str(cause.toString()).splitlines()[0]


def _not_a_stop(record: logging.LogRecord) -> bool:
    return not (record.exc_info and record.exc_info[0] is KeyboardInterrupt)


def _file_and_line(rejected: Rejected) -> tuple[str, int]:
    where, _, number = rejected.source.rpartition(":")
    return (where, int(number)) if number.isdigit() else (rejected.source, 0)
