"""Benchmark of the Flink runner beside ``courseinfra ingest`` on the same file, on the embedded backend.

Run as ``.venv/bin/python bench/flink_runner.py [--events 30000] [--learners 300] [--parallelism 1,2]``
(needs ``courseinfra[flink]``).

Each run is the real command as a child process on a fresh home holding the workload's course, batch
and learners (``tests/support/workload.py``), over one file of progress events in random order:
``courseinfra ingest FILE`` and ``courseinfra flink run aggregator --source FILE --parallelism P``. Start-up
(for Flink: the JVM, MiniCluster, job submission, the Python workers, the bootstrap per subtask)
is measured apart, as the same command over a file of one event, and taken off their times; events/s
is events / (time - start-up). Every run must leave the same enrolments, metrics and AUDIT set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.workload import learners, prepare, random_events, states_metrics_ledger, write_lines

from courseinfra.bootstrap import bootstrap
from courseinfra.settings import load_settings

COURSEINFRA = [sys.executable, "-m", "courseinfra"]


def timed(home: Path, users: list[str], command: list[str]) -> tuple[float, dict[str, Any]]:
    """Seconds of ``command`` on a fresh ``home``, and what it leaves."""
    app = bootstrap(load_settings(home=home))
    try:
        prepare(app, users)
    finally:
        app.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEINFRA_")}
    env["COURSEINFRA_HOME"] = str(home)
    started = time.perf_counter()
    done = subprocess.run(
        [*COURSEINFRA, *command, "--json"], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    app = bootstrap(load_settings(home=home))
    try:
        return seconds, states_metrics_ledger(app, users)
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--learners", type=int, default=300)
    parser.add_argument("--parallelism", default="1,2")
    args = parser.parse_args()
    users = learners(args.learners)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        events = write_lines(root / "events.jsonl", random_events(users, args.events, seed=16))
        one = write_lines(root / "one.jsonl", random_events(users, 1, seed=16))
        start_up, _ = timed(root / "start-ingest", users, ["ingest", str(one)])
        seconds, expected = timed(root / "ingest", users, ["ingest", str(events)])
        rows = [("courseinfra ingest", seconds, start_up)]
        for parallelism in (int(p) for p in args.parallelism.split(",")):
            flink = ["flink", "run", "aggregator", "--parallelism", str(parallelism), "--source"]
            start_up, _ = timed(root / f"start-{parallelism}", users, [*flink, str(one)])
            seconds, outcome = timed(root / f"flink-{parallelism}", users, [*flink, str(events)])
            if outcome != expected:
                raise SystemExit(f"flink run at parallelism {parallelism} left another outcome than ingest")
            rows.append((f"flink run aggregator --parallelism {parallelism}", seconds, start_up))
    print(f"{args.events:,} events, {args.learners:,} learners, embedded backend, chunk 1000")
    print("| runner | seconds | start-up (s) | events/s, start-up apart |")
    print("|---|---:|---:|---:|")
    for name, seconds, start_up in rows:
        print(f"| {name} | {seconds:.1f} | {start_up:.1f} | {args.events / (seconds - start_up):,.0f} |")


if __name__ == "__main__":
    main()
