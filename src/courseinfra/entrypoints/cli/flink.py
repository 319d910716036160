"""``courseinfra flink run aggregator|relation-cache``: the jobs on Flink (the ``courseinfra[flink]`` extra)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from courseinfra.entrypoints.cli.common import Failure, application, print_report
from courseinfra.entrypoints.flink_options import CheckpointMismatch, FlinkOptions, checkpoint_to_resume

app = typer.Typer(no_args_is_help=True, help="The jobs on Apache Flink (pip install 'courseinfra[flink]').")
run_app = typer.Typer(no_args_is_help=True, help="Run a job on a local MiniCluster or a Flink cluster.")
app.add_typer(run_app, name="run")


SourceOption = Annotated[
    Path,
    typer.Option("--source", help="A file of JSON lines, or a folder: every file in it (and below)."),
]
FollowOption = Annotated[
    bool,
    typer.Option(
        "--follow",
        help="Watch the --source folder for new files (every second) and run until stopped; move a "
        "file in once it is complete.",
    ),
]
CheckpointDirOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint-dir",
        help="Keep Flink checkpoints here; a run stopped midway resumes from its latest one when run "
        "again with the same job, source, parallelism and folder.",
    ),
]
CheckpointEveryOption = Annotated[
    float, typer.Option("--checkpoint-every", min=0.1, help="Seconds between checkpoints.")
]
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
    follow: FollowOption = False,
    checkpoint_dir: CheckpointDirOption = None,
    checkpoint_every: CheckpointEveryOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Route the events of a file of JSON lines to their jobs as ``ingest`` does, on Flink: keyed by
    enrolment, written in micro-batches of COURSEINFRA_INGEST_CHUNK_SIZE lines per subtask through the
    same write path, so that the database holds what ``ingest`` leaves (exactly once; bad events kept).

    This process relays the outboxes while the job runs. The exit code is 1 if any event failed.
    """
    options = _options(
        parallelism, jobmanager, python, execution_mode, follow, checkpoint_dir, checkpoint_every
    )
    _run("aggregator", source, options, as_json)


@run_app.command("relation-cache")
def relation_cache_command(
    source: SourceOption,
    parallelism: ParallelismOption = 1,
    jobmanager: JobmanagerOption = None,
    python: PythonOption = None,
    execution_mode: ExecutionModeOption = None,
    follow: FollowOption = False,
    checkpoint_dir: CheckpointDirOption = None,
    checkpoint_every: CheckpointEveryOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Route the events of a file of JSON lines to their jobs as ``ingest`` does, on Flink: keyed by
    the published root (post-publish events), each root's publications applied in order through the
    same write path, so that the relation cache is what ``ingest`` leaves (bad events kept).

    This process relays the outboxes while the job runs. The exit code is 1 if any event failed.
    """
    options = _options(
        parallelism, jobmanager, python, execution_mode, follow, checkpoint_dir, checkpoint_every
    )
    _run("relation-cache", source, options, as_json)


def _options(
    parallelism: int,
    jobmanager: str | None,
    python: str | None,
    execution_mode: str | None,
    follow: bool,
    checkpoint_dir: Path | None,
    checkpoint_every: float,
) -> FlinkOptions:
    if jobmanager is not None and not jobmanager.rpartition(":")[2].isdigit():
        raise Failure(f"--jobmanager {jobmanager}: expected HOST:PORT", 2)
    if execution_mode not in (None, "thread", "process"):
        raise Failure(f"--execution-mode {execution_mode}: expected thread or process", 2)
    return FlinkOptions(
        parallelism, jobmanager, python, execution_mode, follow, checkpoint_dir, checkpoint_every
    )


def _run(job: str, source: Path, options: FlinkOptions, as_json: bool) -> None:
    if options.follow and not source.is_dir():
        raise Failure(f"--follow watches a folder for new files: {source} is not a folder", 2)
    if not source.is_file() and not source.is_dir():
        raise Failure(f"cannot read {source}: not a file or a folder")
    try:
        resume_from = checkpoint_to_resume(job, source, options)
    except CheckpointMismatch as error:
        raise Failure(str(error), 2) from None
    except OSError as error:
        raise Failure(f"cannot use --checkpoint-dir {options.checkpoint_dir}: {error.strerror}") from None
    try:
        from courseinfra.entrypoints.flink_job import JobFailed, run_job
    except ImportError as error:  # only with the extra
        raise Failure(f"the Flink runner needs pip install 'courseinfra[flink]' ({error})") from None
    if resume_from is not None:
        print(f"resuming from the checkpoint {resume_from}", file=sys.stderr)
    with application() as app:
        try:
            report = run_job(job, app.settings, source, options, relay=app.relay, resume_from=resume_from)
        except JobFailed as error:
            app.relay()
            raise Failure(f"the Flink job failed: {error}") from None
        except KeyboardInterrupt:
            app.relay()
            resume = " (run it again to resume from its last checkpoint)" if options.checkpoint_dir else ""
            raise Failure(f"stopped{resume}", 130) from None
    print_report(report, as_json)
