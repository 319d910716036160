"""Peak memory of ``courseinfra ingest`` against the size of its input: flat, or growing with it?

Run as ``.venv/bin/python bench/ingest_memory.py [--sizes 100000,1000000] [--backends embedded]``.

For each size N, the scenario of ``bench/course_metrics.py`` with N events and N / 10 learners (its
courses, enrolments and events file), set up on a fresh home; then ``courseinfra ingest FILE --json`` (the
relay included) runs as a child process and its peak resident set (``ru_maxrss`` of that child, from
``os.wait4``) is read. Baseline from the same run: the peak of ``courseinfra db upgrade`` (a process that
imports the same code and opens the same stores, and processes nothing). Each line also gives the events
per second of the whole command and the checks of the stores after it (``check_stores``: the AUDIT count,
duplicates, pending entries). Scratch stores as in ``bench/course_metrics.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from course_metrics import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    check_stores,
    generate_scenario,
    make_backends,
    setup_app,
)
from courseinfra.adapters.sql.engine import create_engine
from scratch import source_revision

MIB = 2**20


def _status(pid: int) -> dict[str, int]:
    """The process's resident set by kind (``RssAnon``: its heap; ``RssFile``: mapped file pages,
    SQLite's memory map among them), in bytes; empty once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "VmRSS"):
            found[name] = int(value.split()[0]) * 1024
    return found


def child_peak(command: Sequence[str], env: dict[str, str]) -> tuple[int, float, dict[str, int]]:
    """Run ``command``; return its exit code, its wall time and its peak resident set in bytes: as a
    whole (``ru_maxrss`` from ``os.wait4``) and by kind, sampled every 50 ms (``RssAnon``, ``RssFile``)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks = {"RssAnon": 0, "RssFile": 0}
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        for name, value in _status(process.pid).items():
            if name in peaks:
                peaks[name] = max(peaks[name], value)
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and process.stderr is not None:
        sys.stderr.write(process.stderr.read().decode(errors="replace"))
    peaks["maxrss"] = usage.ru_maxrss * 1024  # Linux reports KiB
    return code, seconds, peaks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated event counts")
    parser.add_argument("--backends", default="embedded", help="embedded,postgres")
    parser.add_argument("--chunk", type=int, default=5000, help="COURSEINFRA_INGEST_CHUNK_SIZE")
    parser.add_argument(
        "--sqlite-cache-mb",
        type=int,
        default=None,
        help="COURSEINFRA_SQLITE_CACHE_MB (default: the setting's)",
    )
    parser.add_argument("--courses", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args(argv)
    args.keep = False
    sizes = [int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()]
    courseinfra = shutil.which("courseinfra", path=str(Path(sys.executable).parent)) or "courseinfra"
    cache = "the default" if args.sqlite_cache_mb is None else f"{args.sqlite_cache_mb} MiB"
    print(
        f"- code under test: {source_revision()}; {platform.platform()}; chunk {args.chunk}; SQLite cache {cache}"
    )
    print()
    print(
        "| backend | events | enrolments | input (MB) | ingest: peak RSS (MiB) | its heap (RssAnon) | its mapped files (RssFile) "
        "| idle command: peak RSS | heap | events/s, whole command | AUDIT events | checks |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for size in sizes:
        workdir = Path(tempfile.mkdtemp(prefix="courseinfra-memory-bench-"))
        try:
            scenario = generate_scenario(args.courses, max(size // 10, 10), size, args.seed, workdir)
            for backend in make_backends(args.backends.split(","), args, workdir / "homes"):
                app = setup_app(backend, scenario)
                url = app.engine.url.render_as_string(hide_password=False)
                app.close()
                settings = backend.settings
                env = dict(
                    os.environ,
                    COURSEINFRA_HOME=str(settings.home),
                    COURSEINFRA_INGEST_CHUNK_SIZE=str(args.chunk),
                )
                if args.sqlite_cache_mb is not None:
                    env["COURSEINFRA_SQLITE_CACHE_MB"] = str(args.sqlite_cache_mb)
                if backend.database_url:
                    env["COURSEINFRA_DATABASE_URL"] = backend.database_url
                    env["COURSEINFRA_REDIS_URL"] = backend.redis_url or ""
                _, _, idle = child_peak([courseinfra, "db", "upgrade"], env)
                code, seconds, peak = child_peak(
                    [courseinfra, "ingest", str(scenario.events_path), "--json"], env
                )
                engine = create_engine(url)
                check = check_stores(engine)
                problems = f"exit {code}" if code else "; ".join(check.problems())
                print(
                    f"| {backend.name} | {size:,} | {len(scenario.enrolments):,} | "
                    f"{scenario.events_path.stat().st_size / 1e6:.0f} | {peak['maxrss'] / MIB:.0f} | "
                    f"{peak['RssAnon'] / MIB:.0f} | {peak['RssFile'] / MIB:.0f} | {idle['maxrss'] / MIB:.0f} | "
                    f"{idle['RssAnon'] / MIB:.0f} | "
                    f"{size / seconds:,.0f} | {check.ledger_rows:,} | {problems or 'every check holds'} |",
                    flush=True,
                )
                engine.dispose()
                backend.cleanup(False)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
