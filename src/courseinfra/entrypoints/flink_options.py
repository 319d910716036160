"""How a Flink run runs, and its checkpoint folder (``courseinfra flink run``, ADR 0023); without PyFlink,
so that the command checks its options before it needs the extra."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The file in a checkpoint folder saying which run its checkpoints are of.
RUN_FILE = "courseinfra-run.json"


class CheckpointMismatch(Exception):
    """A checkpoint folder holds an unfinished run of another job, source or parallelism."""


@dataclass(frozen=True)
class FlinkOptions:
    """Where and how the job runs. ``jobmanager`` (``host:port`` of a cluster's REST endpoint) None: a
    local MiniCluster in this process's JVM. ``python`` is the interpreter of the Python workers (it
    must have ``courseinfra[flink]``); None: this process's locally, ``python`` on a cluster's PATH.
    ``execution_mode`` None: ``thread`` locally (the workers in the JVM, given this process's module
    path), ``process`` on a cluster (the workers started with ``python``, which finds its own packages).
    ``follow``: the source is a folder, watched for new files every second; the job runs until stopped.
    ``checkpoint_dir``: checkpoints every ``checkpoint_every`` seconds, kept there, and a run of the same
    job over the same source resumes from the latest one (see :func:`checkpoint_to_resume`)."""

    parallelism: int = 1
    jobmanager: str | None = None
    python: str | None = None
    execution_mode: str | None = None
    follow: bool = False
    checkpoint_dir: Path | None = None
    checkpoint_every: float = 10.0


def checkpoint_to_resume(job: str, source: Path, options: FlinkOptions) -> Path | None:
    """The latest complete checkpoint in ``options.checkpoint_dir`` of an unfinished run of ``job`` over
    ``source`` (None: nothing to resume, the run starts at the beginning), after recording this run
    there. :class:`CheckpointMismatch` when the folder holds an unfinished run of another job, source or
    parallelism (a checkpoint keys the lines by subtask: it restores only into the same parallelism)."""
    if options.checkpoint_dir is None:
        return None
    folder = options.checkpoint_dir
    this_run = {"job": job, "source": str(source.resolve()), "parallelism": options.parallelism}
    run_file = folder / RUN_FILE
    try:
        previous: dict[str, Any] = json.loads(run_file.read_text())
    except (OSError, ValueError):
        previous = {"finished": True}
    latest = None
    if not previous.get("finished"):
        wanted = {key: previous.get(key) for key in this_run}
        if wanted != this_run:
            raise CheckpointMismatch(
                f"{folder} holds the checkpoints of an unfinished run of {wanted['job']} over "
                f"{wanted['source']} at parallelism {wanted['parallelism']}: run that again, or give "
                "another --checkpoint-dir"
            )
        completed = sorted(folder.glob("*/chk-*/_metadata"), key=lambda m: m.stat().st_mtime)
        latest = completed[-1].parent if completed else None
    folder.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps({**this_run, "finished": False}))
    return latest


def mark_finished(options: FlinkOptions) -> None:
    if options.checkpoint_dir is not None:
        run_file = options.checkpoint_dir / RUN_FILE
        run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "finished": True}))
