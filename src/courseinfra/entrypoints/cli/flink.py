"""``courseinfra flink run aggregator|relation-cache``: the jobs on Flink (the ``courseinfra[flink]`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from courseinfra.entrypoints.cli.common import Failure, application, print_report

app = typer.Typer(no_args_is_help=True, help="The jobs on Apache Flink (pip install 'courseinfra[flink]').")
run_app = typer.Typer(no_args_is_help=True, help="Run a job on a local MiniCluster or a Flink cluster.")
app.add_typer(run_app, name="run")


SourceOption = Annotated[Path, typer.Option("--source", help="A file of JSON lines.")]
ParallelismOption = Annotated[
    int, typer.Option("--parallelism", min=1, max=256, help="Subtasks sharing the keys (enrolments, roots).")
]
JobmanagerOption = Annotated[
    str | None,
    typer.Option(
        "--jobmanager",
        help="HOST:PORT of a Flink cluster's REST endpoint; none: a local MiniCluster in this process.",
    ),
]
PythonOption = Annotated[
    str | None,
    typer.Option(
        "--python",
        help="The Python workers' interpreter, with courseinfra[flink]; default: this one locally, "
        "`python` on a cluster's PATH.",
    ),
]
ExecutionModeOption = Annotated[
    str | None,
    typer.Option(
        "--execution-mode",
        help="thread (the Python workers in the JVM) or process; default: thread locally, process "
        "on a cluster.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the run's counters as JSON.")]


@run_app.command("aggregator")
def aggregator_command(
    source: SourceOption,
    parallelism: ParallelismOption = 1,
    jobmanager: JobmanagerOption = None,
    python: PythonOption = None,
    execution_mode: ExecutionModeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Route the events of a file of JSON lines to their jobs as ``ingest`` does, on Flink: keyed by
    enrolment, written in micro-batches of COURSEINFRA_INGEST_CHUNK_SIZE lines per subtask through the
    same write path, so that the database holds what ``ingest`` leaves (exactly once; bad events kept).

    This process relays the outboxes while the job runs. The exit code is 1 if any event failed.
    """
    _run("aggregator", source, parallelism, jobmanager, python, execution_mode, as_json)


@run_app.command("relation-cache")
def relation_cache_command(
    source: SourceOption,
    parallelism: ParallelismOption = 1,
    jobmanager: JobmanagerOption = None,
    python: PythonOption = None,
    execution_mode: ExecutionModeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Route the events of a file of JSON lines to their jobs as ``ingest`` does, on Flink: keyed by
    the published root (post-publish events), each root's publications applied in order through the
    same write path, so that the relation cache is what ``ingest`` leaves (bad events kept).

    This process relays the outboxes while the job runs. The exit code is 1 if any event failed.
    """
    _run("relation-cache", source, parallelism, jobmanager, python, execution_mode, as_json)


def _run(
    job: str,
    source: Path,
    parallelism: int,
    jobmanager: str | None,
    python: str | None,
    execution_mode: str | None,
    as_json: bool,
) -> None:
    if jobmanager is not None and not jobmanager.rpartition(":")[2].isdigit():
        raise Failure(f"--jobmanager {jobmanager}: expected HOST:PORT", 2)
    if execution_mode not in (None, "thread", "process"):
        raise Failure(f"--execution-mode {execution_mode}: expected thread or process", 2)
    if not source.is_file():
        raise Failure(f"cannot read {source}: not a file")
    try:
        from courseinfra.entrypoints.flink_job import FlinkOptions, run_job
    except ImportError as error:  # only with the extra
        raise Failure(f"the Flink runner needs pip install 'courseinfra[flink]' ({error})") from None
    options = FlinkOptions(parallelism, jobmanager, python, execution_mode)
    with application() as app:
        report = run_job(job, app.settings, source, source.name, options, relay=app.relay)
    print_report(report, as_json)
