"""The aggregator as a PyFlink DataStream job (``courseinfra flink run aggregator``, ADR 0023).

The only module that imports PyFlink (the ``courseinfra[flink]`` extra). The job reads a file of JSON
lines with Flink's ``FileSource``, numbers its lines in one subtask (the file is read by one reader, in
order), keys each event by its enrolment (:func:`~courseinfra.domain.job_requests.partition_of`, the key
``ingest --workers`` partitions by) and hands the lines of each parallel subtask, in micro-batches, to
the same :func:`~courseinfra.services.events.ingest.ingest` the embedded runner calls, through an
application bootstrapped in the subtask from the command's settings. Exactly-once and the keeping of bad
events are therefore the database's and ingest's, as for ``ingest --workers``: Flink holds no state of
the aggregator. Each micro-batch's report comes back to the command, which relays the outboxes while the
job runs and once at the end (the subtasks do not relay, as ``ingest --workers`` processes do not).
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson
from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.datastream import KeyedProcessFunction, MapFunction, RuntimeContext, StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import FileSource, StreamFormat
from pyflink.java_gateway import get_gateway

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.job_requests import Outcome, partition_of, root_partition_of
from courseinfra.services.events.ingest import (
    BadLine,
    IngestReport,
    Rejected,
    RunCounters,
    ingest,
    read_lines,
)
from courseinfra.settings import Settings

#: Keys of the enrolments: an enrolment's events share one (``partition_of`` into this many), so they
#: reach one subtask in file order; events without an enrolment key (and lines that are not JSON) are 0.
KEYS = 1 << 15
#: Flink's watermark at the end of a bounded input; a timer at it fires once every line is in.
END_OF_INPUT = (1 << 63) - 1
#: Seconds between two relays of the command while the job runs.
RELAY_EVERY = 1.0


@dataclass(frozen=True)
class FlinkOptions:
    """Where and how the job runs. ``jobmanager`` (``host:port`` of a cluster's REST endpoint) None: a
    local MiniCluster in this process's JVM. ``python`` is the interpreter of the Python workers (it
    must have ``courseinfra[flink]``); None: this process's locally, ``python`` on a cluster's PATH.
    ``execution_mode`` None: ``thread`` locally (the workers in the JVM, given this process's module
    path), ``process`` on a cluster (the workers started with ``python``, which finds its own packages)."""

    parallelism: int = 1
    jobmanager: str | None = None
    python: str | None = None
    execution_mode: str | None = None


def _file_bytes(text: str) -> bytes:
    """A line as the file's bytes: the source decodes it as ISO-8859-1, one character per byte, so that
    no byte is lost or replaced before :func:`read_lines` judges it as the embedded runner does."""
    return text.encode("latin-1")


#: A job's key of an event: the aggregator's enrolment, the relation cache updater's root.
KEYED_BY: dict[str, Callable[[Mapping[str, Any], int], int]] = {
    "aggregator": partition_of,
    "relation-cache": root_partition_of,
}


class NumberLines(MapFunction):  # type: ignore[misc]
    """Gives each line its number in the file and its job's key (:data:`KEYED_BY`); run by one subtask,
    in file order."""

    def __init__(self, job: str = "aggregator") -> None:
        self.number = 0
        self.keyed_by = KEYED_BY[job]

    def map(self, value: str) -> tuple[int, int, str]:
        self.number += 1
        try:
            event = orjson.loads(_file_bytes(value))
        except orjson.JSONDecodeError:
            event = None
        key = self.keyed_by(event, KEYS) if isinstance(event, dict) else 0
        return key, self.number, value


class IngestInMicroBatches(KeyedProcessFunction):  # type: ignore[misc]
    """Buffers the lines of its subtask (several enrolments, each in file order) and ingests them every
    ``chunk_size`` lines and at the end of the input, each micro-batch in one transaction of ingest's;
    yields each micro-batch's report as JSON (:func:`report_json`)."""

    def __init__(self, settings: Settings, source: str) -> None:
        self.settings = settings
        self.source = source
        self.buffer: list[tuple[int, str]] = []
        self.app: App | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.buffer = []
        self.app = bootstrap(self.settings, publish_on_commit=False)  # the command relays

    def close(self) -> None:
        # Lines still buffered here were not written: the job was cancelled or failed, and a run again
        # writes them, exactly once (the database's guarantee, not Flink's).
        if self.app is not None:
            self.app.close()
            self.app = None

    def process_element(
        self, value: tuple[int, int, str], ctx: KeyedProcessFunction.Context
    ) -> Iterator[str]:
        if not self.buffer:
            # Any key of this subtask will do: its timer flushes the whole buffer.
            ctx.timer_service().register_event_time_timer(END_OF_INPUT - 1)
        self.buffer.append((value[1], value[2]))
        if len(self.buffer) >= self.settings.ingest_chunk_size:
            yield self.flush()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[str]:
        if self.buffer:
            yield self.flush()

    def flush(self) -> str:
        assert self.app is not None, "open() bootstraps the application"
        lines, self.buffer = self.buffer, []
        report = ingest(
            _at_their_numbers(lines, self.settings.ingest_max_line_bytes),
            self.source,
            self.app.router,
            self.app.uow_factory,
            chunk_size=len(lines),
        )
        return report_json(report)


def _at_their_numbers(lines: list[tuple[int, str]], max_bytes: int) -> Iterator[str | BadLine]:
    """The lines at their line numbers (blank lines between, which ingest skips), so that kept events
    name their line of the file; each judged by :func:`read_lines` as the embedded runner judges it (not
    UTF-8, a NUL byte, too long)."""
    previous = 0
    for number, text in lines:
        yield from repeat("", number - previous - 1)
        previous = number
        yield next(read_lines(io.BytesIO(_file_bytes(text) + b"\n"), max_bytes=max_bytes))


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


def environment(options: FlinkOptions) -> StreamExecutionEnvironment:
    """A local MiniCluster, or the cluster whose REST endpoint ``options.jobmanager`` names."""
    config = Configuration()
    config.set_string(
        "python.execution-mode", options.execution_mode or ("process" if options.jobmanager else "thread")
    )
    python = options.python or (None if options.jobmanager else sys.executable)
    if python:
        # Otherwise the Java side starts the workers with the plain `python` on PATH.
        config.set_string("python.executable", python)
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


def run_aggregator(
    settings: Settings,
    path: Path,
    source: str,
    options: FlinkOptions,
    *,
    relay: Callable[[], int] | None = None,
) -> IngestReport:
    """:func:`run_job` keyed by enrolment."""
    return run_job("aggregator", settings, path, source, options, relay=relay)


def run_job(
    job: str,
    settings: Settings,
    path: Path,
    source: str,
    options: FlinkOptions,
    *,
    relay: Callable[[], int] | None = None,
) -> IngestReport:
    """Run ``job``'s Flink job (a name of :data:`KEYED_BY`: events keyed by enrolment or by root) over
    the JSON lines of ``path``, every event routed to its job as ``ingest`` routes it, and return the
    micro-batches' reports merged, rejections in line order. The schema must be migrated already (the caller bootstraps first).
    ``relay`` (the caller's ``App.relay``) is called every second or so while the job runs, and once at
    the end."""
    env = environment(options)
    file_source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format("ISO-8859-1"), str(path.resolve())
    ).build()
    lines = env.from_source(file_source, WatermarkStrategy.no_watermarks(), "json-lines").set_parallelism(1)
    numbered = lines.map(
        NumberLines(job), output_type=Types.TUPLE([Types.INT(), Types.LONG(), Types.STRING()])
    ).set_parallelism(1)
    reports = numbered.key_by(lambda row: row[0], key_type=Types.INT()).process(
        IngestInMicroBatches(settings, source), output_type=Types.STRING()
    )
    merged = IngestReport()
    last_relay = time.monotonic()
    with reports.execute_and_collect(f"courseinfra {job} {source}") as results:
        for text in results:
            merge_report_json(merged, text)
            if relay is not None and time.monotonic() - last_relay >= RELAY_EVERY:
                relay()
                last_relay = time.monotonic()
    if relay is not None:
        relay()
    merged.rejected.sort(key=_line_number)
    return merged


def _line_number(rejected: Rejected) -> int:
    _, _, number = rejected.source.rpartition(":")
    return int(number) if number.isdigit() else 0
