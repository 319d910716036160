"""Several writers on one home, as users run them: ``courseinfra ingest`` processes over one file split
any way, the API and the CLI at once, and writers killed with SIGKILL at random moments then resumed.
Each must leave exactly what one clean run of the same events leaves: the enrolments, the unit metrics,
the AUDIT set, the kept failures, and every AUDIT event in the event stream once (at least once after a
kill)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.events import AuditEventEmitted
from courseinfra.services.events.ingest import ingest
from courseinfra.settings import Settings, load_settings
from tests.support.cli import COURSEINFRA, Cli, answers_health, free_port
from tests.support.workload import (
    learners,
    prepare,
    progress_event,
    random_events,
    states_metrics_ledger,
    write_lines,
)

#: Real processes at length: the full tier (`make test`), not `make check`.
pytestmark = pytest.mark.slow


USERS = learners(40)
AUDIT_STREAM = AuditEventEmitted.event_type


#: Events of the workload whose writers are killed: enough for a few seconds of work after start-up.
KILLED_WORKLOAD = 16_000


def workload(count: int = 3000) -> list[str]:
    """``count`` progress events of 40 learners, plus a line that is not JSON and a learner not
    enrolled."""
    lines = random_events(USERS, count, seed=11)
    lines.insert(500, "{not json\n")
    lines.insert(1500, progress_event("stranger", [("r00", 2)], "stranger") + "\n")
    return lines


def with_stream(settings: Settings) -> Settings:
    """``settings`` with the event stream on: embedded beside SQLite, Redis streams beside PostgreSQL."""
    return load_settings(
        home=settings.home,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        event_stream="redis" if settings.redis_url else "embedded",
    )


def outcome(app: App) -> dict[str, Any]:
    with app.uow_factory() as uow:
        failed = sorted((e.payload, e.code) for e in uow.failed_events.list(limit=100))
    return {**states_metrics_ledger(app, USERS), "failed": failed}


def stream_mids(app: App) -> Counter[str]:
    """How many times each AUDIT ``mid`` is in the event stream."""
    assert app.stream is not None
    mids: Counter[str] = Counter()
    after = None
    while page := app.stream.read(AUDIT_STREAM, after=after, limit=1000):
        mids.update(str(entry.message.payload["telemetry"]["mid"]) for entry in page)
        after = page[-1].position
    return mids


def ledger_mids(app: App) -> set[str]:
    with app.uow_factory() as uow:
        return {entry.telemetry["mid"] for entry in uow.audits.list(limit=1_000_000)}


def run_alone(home: Path, lines: list[str]) -> dict[str, Any]:
    """What one process ingesting ``lines``, alone, leaves."""
    app = bootstrap(load_settings(home=home))
    try:
        prepare(app, USERS)
        ingest(lines, "events.jsonl", app.router, app.uow_factory, chunk_size=200)
        app.relay()
        return outcome(app)
    finally:
        app.close()


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_alone(tmp_path_factory.mktemp("clean"), workload())


@pytest.fixture(scope="module")
def clean_run_of_the_killed_workload(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_alone(tmp_path_factory.mktemp("clean-killed"), workload(KILLED_WORKLOAD))


@pytest.fixture
def home(settings: Settings) -> Iterator[App]:
    app = bootstrap(with_stream(settings))
    try:
        prepare(app, USERS)
        yield app
    finally:
        app.close()


def start_ingest(cli: Cli, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COURSEINFRA, "ingest", str(path), "--json"],
        env={**cli.env, "COURSEINFRA_INGEST_CHUNK_SIZE": "100"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> None:
    """Wait for a writer that was not killed: exit 0, or 1 where its share held a failing event."""
    _out, err = process.communicate(timeout=300)
    assert process.returncode in (0, 1), err
    assert "Traceback" not in err, err


def check(app: App, clean_run: dict[str, Any], *, exactly_once: bool) -> None:
    assert outcome(app) == clean_run
    assert len(clean_run["ledger"]) > 1000
    mids = stream_mids(app)
    assert set(mids) == ledger_mids(app)
    if exactly_once:
        assert set(mids.values()) == {1}


def split(lines: list[str], parts: int, rng: random.Random | None) -> list[list[str]]:
    """Lines dealt round-robin (``rng`` None) or at random to ``parts`` files."""
    shares: list[list[str]] = [[] for _ in range(parts)]
    for number, line in enumerate(lines):
        shares[rng.randrange(parts) if rng else number % parts].append(line)
    return shares


@pytest.mark.parametrize(
    ("parts", "seed"), [(2, None), (3, 5)], ids=["odd-and-even-lines", "three-random-shares"]
)
def test_concurrent_ingests_leave_what_one_clean_run_leaves(
    home: App, settings: Settings, tmp_path: Path, clean_run: dict[str, Any], parts: int, seed: int | None
) -> None:
    cli = Cli(with_stream(settings))
    shares = split(workload(), parts, random.Random(seed) if seed is not None else None)
    files = [write_lines(tmp_path / f"share{n}.jsonl", share) for n, share in enumerate(shares)]
    for process in [start_ingest(cli, path) for path in files]:
        finish(process)
    check(home, clean_run, exactly_once=True)


def test_the_api_and_the_cli_together_leave_what_one_clean_run_leaves(
    home: App, settings: Settings, tmp_path: Path, clean_run: dict[str, Any]
) -> None:
    cli = Cli(with_stream(settings))
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*COURSEINFRA, "serve", "--port", str(port)],
        env={**cli.env, "COURSEINFRA_INGEST_CHUNK_SIZE": "100"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert answers_health(base, server), (tmp_path / "serve.log").read_text()
        by_api, by_cli = split(workload(), 2, None)
        writer = start_ingest(cli, write_lines(tmp_path / "cli.jsonl", by_cli))
        secret = json.loads(cli("tokens", "create", "--name", "feeder", "--role", "ingest").stdout)["secret"]
        with httpx.Client(
            base_url=base, timeout=120, headers={"Authorization": f"Bearer {secret}"}
        ) as client:
            for start in range(0, len(by_api), 150):
                answer = client.post(
                    "/v1/events",
                    content="".join(by_api[start : start + 150]).encode(),
                    headers={"content-type": "application/x-ndjson"},
                )
                assert answer.status_code == 200, answer.text
        finish(writer)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    check(home, clean_run, exactly_once=True)


def test_writers_killed_at_random_moments_then_resumed_leave_one_clean_run(
    home: App, settings: Settings, tmp_path: Path, clean_run_of_the_killed_workload: dict[str, Any]
) -> None:
    """Six rounds of two writers over halves of the file, each round taking a longer part of each half
    (so that every round has new work), each writer killed with SIGKILL at a random moment (before its
    first commit, midway, in the relay); then both halves run to the end."""
    cli = Cli(with_stream(settings))
    shares = split(workload(KILLED_WORKLOAD), 2, None)
    halves = [write_lines(tmp_path / f"half{n}.jsonl", share) for n, share in enumerate(shares)]
    rng = random.Random(int.from_bytes(os.urandom(4)))
    kills = 0
    outcomes: list[str] = []
    # Seconds after start in which a writer is killed; shrinks while writers outrun it, down to the
    # start-up of the process (a kill before the first commit), so that a fast machine kills too.
    window = 6.0
    for round_number in range(1, 7):
        parts = [
            write_lines(tmp_path / f"round{n}.jsonl", share[: len(share) * round_number // 6])
            for n, share in enumerate(shares)
        ]
        started = time.monotonic()
        doomed = [(start_ingest(cli, path), rng.uniform(min(1.0, window / 2), window)) for path in parts]
        for process, moment in sorted(doomed, key=lambda pair: pair[1]):
            while process.poll() is None and time.monotonic() - started < moment:
                time.sleep(0.02)
            if process.poll() is None:
                process.kill()
                kills += 1
                outcomes.append(f"round {round_number}: killed at {moment:.2f} s")
            else:
                assert process.returncode in (0, 1)
                took = time.monotonic() - started  # at most: it may have ended while the other was awaited
                outcomes.append(f"round {round_number}: exit {process.returncode} after {took:.2f} s")
                window = max(0.3, min(window, took * 0.9))
            _, err = process.communicate(timeout=300)
            assert "Traceback" not in err, err
    for process in [start_ingest(cli, path) for path in halves]:
        finish(process)
    assert kills >= 6, f"the writers finished before they could be killed: {outcomes}"
    check(home, clean_run_of_the_killed_workload, exactly_once=False)
