"""Ingest with several worker processes: the same result as one process, on every backend."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.events import AuditEventEmitted
from courseinfra.domain.job_requests import partition_of
from courseinfra.entrypoints.workers import ingest_in_workers, only_partition
from courseinfra.services.events.ingest import IngestReport, ingest
from courseinfra.services.events.ports import OutboxMessage
from courseinfra.settings import Settings, load_settings
from tests.support.cli import Cli
from tests.support.workload import LEAVES, learners, prepare, progress_event, states_metrics_ledger

#: Real processes at length: the full tier (`make test`), not `make check`.
pytestmark = pytest.mark.slow


LEARNERS = learners(12)
EVENT_COUNTERS = {"total", "success", "failed", "skipped", "audit-events", "certificate-requests"}


def event_lines() -> list[str]:
    """240 progress events of 12 learners in random order (duplicates included), a learner who is not
    enrolled, a line that is not JSON, an event with a status out of range and a blank line."""
    rng = random.Random(7)
    lines: list[str] = []
    for number in range(240):
        user = rng.choice(LEARNERS)
        contents = [(rng.choice(LEAVES), rng.choice((1, 2, 2))) for _ in range(rng.randint(1, 3))]
        lines.append(progress_event(user, contents, f"m{number}"))
    lines.insert(17, progress_event("stranger", [("r00", 2)], "stranger"))
    lines.insert(40, "{not json")
    lines.insert(99, progress_event(LEARNERS[3], [("r01", 7)], "bad-status"))
    lines.insert(100, "")
    return [line + "\n" for line in lines]


def events_file(folder: Path) -> Path:
    path = folder / "events.jsonl"
    path.write_text("".join(event_lines()), encoding="utf-8")
    return path


def outcome(app: App, report: IngestReport) -> dict[str, Any]:
    """What a run leaves, without its timestamps."""
    with app.uow_factory() as uow:
        failed = sorted((e.source, e.code) for e in uow.failed_events.list(limit=100))
        # Reads, writes and cache hits depend on how events fall into micro-batches: left out.
        counters = {
            job: {name: value for name, value in counts.items() if name in EVENT_COUNTERS}
            for job, counts in uow.counters.all().items()
        }
    return {
        **states_metrics_ledger(app, LEARNERS),
        "failed": failed,
        "counters": counters,
        "rejected": [(r.source, r.code) for r in report.rejected],
    }


def test_every_line_is_in_exactly_one_partition_and_an_enrolment_in_one() -> None:
    lines = event_lines()
    kept = [list(only_partition(lines, partition, 3)) for partition in range(3)]
    assert all(len(partition) == len(lines) for partition in kept)  # line numbers stay
    owner_of_user: dict[str, set[int]] = {}
    for number, text in enumerate(lines):
        owners = [partition for partition in range(3) if kept[partition][number].strip()]
        assert len(owners) == (1 if text.strip() else 0)
        if owners and text.startswith('{"'):
            owner_of_user.setdefault(orjson.loads(text)["edata"]["userId"], set()).update(owners)
    assert all(len(owners) == 1 for owners in owner_of_user.values())
    assert set().union(*owner_of_user.values()) == {0, 1, 2}
    assert [partition for partition in range(3) if kept[partition][40]] == [0]  # not JSON: the first


def test_partitions_do_not_depend_on_the_process() -> None:
    event = {"edata": {"userId": " u1 ", "courseId": "c", "batchId": "b"}}
    assert partition_of(event, 7) == partition_of(
        {"edata": {"userId": "u1", "courseId": "c", "batchId": "b"}}, 7
    )
    assert partition_of(event, 7) == 6  # crc32 of the key: the same in every process and machine
    assert partition_of({"edata": {"userId": "u1"}}, 7) == 0
    assert partition_of(event, 1) == 0


def test_three_workers_leave_what_one_process_leaves(settings: Settings, tmp_path: Path) -> None:
    path = events_file(tmp_path)
    sequential = bootstrap(load_settings(home=tmp_path / "sequential"))
    try:
        prepare(sequential, LEARNERS)
        with path.open(encoding="utf-8") as lines:
            report = ingest(lines, "events.jsonl", sequential.router, sequential.uow_factory, chunk_size=16)
        sequential.relay()
        expected = outcome(sequential, report)
    finally:
        sequential.close()

    app = bootstrap(settings)
    try:
        prepare(app, LEARNERS)
        audits: list[OutboxMessage] = []
        app.bus.subscribe(AuditEventEmitted.event_type, audits.append)
        advanced: list[int] = []
        report = ingest_in_workers(
            settings, path, "events.jsonl", 3, chunk_size=16, on_progress=advanced.append
        )
        app.relay()
        got = outcome(app, report)
    finally:
        app.close()

    assert got == expected
    assert len(expected["ledger"]) > 100
    assert len(expected["failed"]) == 3
    assert sum(advanced) == 243  # every line but the blank one, once
    delivered = Counter(
        (m.key, t["object"]["type"], t["object"]["id"], t["edata"]["type"])
        for m in audits
        if (t := m.payload["telemetry"])
    )
    assert len(delivered) == len(expected["ledger"])
    assert set(delivered.values()) == {1}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_cli_ingests_a_file_with_workers_and_refuses_stdin(
    settings: Settings, tmp_path: Path, workers: str
) -> None:
    app = bootstrap(settings)
    try:
        prepare(app, LEARNERS)
    finally:
        app.close()
    cli = Cli(settings)
    done = cli("ingest", str(events_file(tmp_path)), "--workers", workers, "--json")
    assert done.returncode == 1, done.stderr  # three events failed
    report = json.loads(done.stdout)
    assert report["jobs"]["course-metrics-aggregator"]["success"] == 240
    assert [r["source"] for r in report["rejected"]] == [
        "events.jsonl:18",
        "events.jsonl:41",
        "events.jsonl:100",
    ]
    audits = cli("audit", "list", "--user", LEARNERS[0])
    assert audits.returncode == 0
    assert len(audits.stdout.splitlines()) > 3

    refused = cli("ingest", "-", "--workers", workers, stdin="")
    assert refused.returncode != 0
    assert "--workers needs a file" in refused.stderr
