"""The Flink runner leaves what ``courseinfra ingest`` leaves: the same file of events through
``courseinfra flink run aggregator --parallelism 2`` (a local MiniCluster) and through ``courseinfra
ingest`` gives the same enrolments, metrics, AUDIT set, kept failures and reported rejections (ADR 0023).

Needs the ``courseinfra[flink]`` extra (the Makefile installs it): without it the command fails, and so
does this test; it is never skipped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from courseinfra.bootstrap import App, bootstrap
from courseinfra.services import content, events
from courseinfra.settings import Settings, load_settings
from tests.support.builders import collection, leaf, post_publish_event
from tests.support.cli import COURSEINFRA, Cli
from tests.support.workload import (
    learners,
    prepare,
    progress_event,
    random_events,
    states_metrics_ledger,
    write_lines,
)

#: A MiniCluster and a JVM per run: the full tier (`make test`), not `make check`.
pytestmark = pytest.mark.slow

USERS = learners(30)


def workload() -> bytes:
    """Progress events in random order (repeats and regressions), and what ingest keeps or skips: a
    line that is not JSON, a learner not enrolled, an action no job takes, a line that is not UTF-8, one
    with a NUL byte, one ending in CRLF and blank lines."""
    lines = [line.encode() for line in random_events(USERS, 1500, seed=16)]
    lines.insert(100, b"{not json\n")
    lines.insert(300, progress_event("stranger", [("r00", 2)], "stranger").encode() + b"\n")
    lines.insert(500, b'{"eid": "BE_JOB_REQUEST", "edata": {"action": "unheard-of"}}\n')
    lines.insert(700, b'{"eid": "BE_JOB_REQUEST", "mid": "caf\xe9"}\n')
    lines.insert(900, b'{"eid": "BE_JOB_REQUEST", "mid": "n\x00l"}\n')
    lines.insert(1100, progress_event(USERS[0], [("r10", 2)], "crlf").encode() + b"\r\n")
    lines.insert(1200, b"\n")
    return b"".join(lines)


def outcome(app: App) -> dict[str, Any]:
    with app.uow_factory() as uow:
        failed = sorted((e.payload, e.code, e.source) for e in uow.failed_events.list(limit=100))
    return {**states_metrics_ledger(app, USERS), "failed": failed}


def run(cli: Cli, *args: str) -> dict[str, Any]:
    """Run a command that ingests events and prints its report: it exits 1 when an event failed, else 0."""
    done = subprocess.run(
        [*COURSEINFRA, *args, "--json"],
        env={**cli.env, "COURSEINFRA_INGEST_CHUNK_SIZE": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    failed = any(r["outcome"] == "failed" for r in report["rejected"])
    assert done.returncode == (1 if failed else 0), done.stderr
    return report


def ingested(settings: Settings, *commands: list[str]) -> tuple[dict[str, Any], list[Any]]:
    """The outcome and the reported rejections of ``commands``, run in turn over the workload on
    ``settings``."""
    app = bootstrap(settings)
    try:
        prepare(app, USERS)
        rejected = [r for command in commands for r in run(Cli(settings), *command)["rejected"]]
        app.relay()
        return outcome(app), rejected
    finally:
        app.close()


def test_the_flink_runner_leaves_what_ingest_leaves(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(workload())
    by_ingest = ingested(load_settings(home=tmp_path / "ingest"), ["ingest", str(events)])
    by_flink = ingested(
        settings, ["flink", "run", "aggregator", "--source", str(events), "--parallelism", "2"]
    )

    assert by_flink == by_ingest
    state, rejected = by_flink
    assert len(state["ledger"]) > 500
    assert {code for _, code, _ in state["failed"]} == {
        "malformed-json",
        "enrolment-not-found",
        "invalid-utf8",
        "nul-byte",
    }
    assert "no-job" in {r["code"] for r in rejected}  # skipped: reported, not listed as failed
    assert [r["source"] for r in rejected] == sorted(
        (r["source"] for r in rejected), key=lambda s: int(s.rpartition(":")[2])
    )


ROOTS = [f"course-{n}" for n in range(6)]


def publications() -> bytes:
    """Post-publish events of six roots, each published twice (the second after its hierarchy gained a
    unit: stored before the run, so the last publication wins either way), and what is kept: a root
    never stored, a leaf's mimeType (skipped), a missing identifier."""
    lines = [post_publish_event(root).encode() + b"\n" for root in ROOTS for _ in range(2)]
    lines.insert(3, post_publish_event("never-stored").encode() + b"\n")
    lines.insert(5, post_publish_event("course-1", mime_type="application/pdf").encode() + b"\n")
    lines.insert(8, b'{"eid": "BE_JOB_REQUEST", "edata": {"action": "post-publish-process"}}\n')
    return b"".join(lines)


def cache_of(settings: Settings, *command: str) -> dict[str, Any]:
    """The relation cache of every root, and the kept failures, after ``command`` over the publications."""
    app = bootstrap(settings)
    try:
        for number, root in enumerate(ROOTS):
            units = [
                collection(f"{root}-u{u}", leaf(f"{root}-r{u}"), leaf(f"{root}-s{u}"))
                for u in range(number + 1)
            ]
            content.put_hierarchy(collection(root, *units, visibility="Default"), app.uow_factory())
        run(Cli(settings), *command)
        app.relay()
        cache = {
            root: {key: app.cache.get_many([key])[key] for key in sorted(app.cache.owned_keys(root))}
            for root in ROOTS
        }
        with app.uow_factory() as uow:
            failed = sorted((e.code, e.source) for e in uow.failed_events.list(limit=100))
        return {"cache": cache, "failed": failed}
    finally:
        app.close()


def test_the_relation_cache_on_flink_is_what_ingest_builds(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "publications.jsonl"
    events.write_bytes(publications())
    by_ingest = cache_of(load_settings(home=tmp_path / "ingest"), "ingest", str(events))
    by_flink = cache_of(
        settings, "flink", "run", "relation-cache", "--source", str(events), "--parallelism", "2"
    )
    assert by_flink == by_ingest
    assert all(by_flink["cache"][root] for root in ROOTS)
    assert len(by_flink["cache"]["course-5"]) > len(by_flink["cache"]["course-0"])
    assert {code for code, _ in by_flink["failed"]} >= {"hierarchy-not-found", "missing-identifier"}


def by_learner(lines: list[str], parts: int) -> list[list[str]]:
    """``lines`` of progress events in ``parts`` shares, each learner's events in one share, in order."""
    shares: list[list[str]] = [[] for _ in range(parts)]
    for line in lines:
        shares[USERS.index(json.loads(line)["edata"]["userId"]) % parts].append(line)
    return shares


def test_a_folder_is_read_file_by_file_as_ingest_reads_each(settings: Settings, tmp_path: Path) -> None:
    """Every file of a folder (one below it too), each learner's events in one file: the state ingest
    leaves from the files one after the other, and kept events named by their file and line."""
    shares = by_learner(random_events(USERS, 900, seed=61), 3)
    shares[1].insert(40, "{not json\n")
    folder = tmp_path / "in"
    (folder / "later").mkdir(parents=True)
    files = [folder / "a.jsonl", folder / "b.jsonl", folder / "later" / "c.jsonl"]
    for file, share in zip(files, shares, strict=True):
        write_lines(file, share)
    by_ingest = ingested(load_settings(home=tmp_path / "ingest"), *(["ingest", str(f)] for f in files))
    by_flink = ingested(
        settings, ["flink", "run", "aggregator", "--source", str(folder), "--parallelism", "2"]
    )

    assert by_flink[0] == {**by_ingest[0], "failed": [("{not json", "malformed-json", "b.jsonl:41")]}
    assert [r["source"] for r in by_flink[1]] == ["b.jsonl:41"]
    assert len(by_flink[0]["ledger"]) > 300


def counted(settings: Settings) -> int:
    """Events the jobs have counted so far (in micro-batches written)."""
    app = bootstrap(settings)
    try:
        return sum(counts.get("total", 0) for counts in events.job_counters(app.uow_factory).values())
    finally:
        app.close()


def test_a_followed_folder_takes_files_as_they_come(settings: Settings, tmp_path: Path) -> None:
    """``--follow``: files moved into the folder while the job runs are written within seconds; the job
    runs until stopped (SIGINT: exit 130, one line, no traceback), and leaves what ingest leaves."""
    shares = by_learner(random_events(USERS, 600, seed=62), 2)
    staged = [write_lines(tmp_path / f"part-{n}.jsonl", share) for n, share in enumerate(shares)]
    by_ingest = ingested(load_settings(home=tmp_path / "ingest"), *(["ingest", str(f)] for f in staged))

    folder = tmp_path / "incoming"
    folder.mkdir()
    app = bootstrap(settings)
    try:
        prepare(app, USERS)
    finally:
        app.close()
    job = subprocess.Popen(
        [*COURSEINFRA, "flink", "run", "aggregator", "--source", str(folder), "--follow"],
        env=Cli(settings).env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        for number, file in enumerate(staged, start=1):
            shutil.move(file, folder / file.name)
            wanted = sum(len(share) for share in shares[:number])
            deadline = time.monotonic() + 120
            while counted(settings) < wanted:
                assert job.poll() is None, job.communicate()[1]
                assert time.monotonic() < deadline, f"{file.name} not written within 120 s"
                time.sleep(0.5)
        assert job.poll() is None, "a followed folder's job runs until stopped"
        job.send_signal(signal.SIGINT)
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.communicate()
    assert job.returncode == 130, stderr
    assert "stopped" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    app = bootstrap(settings)
    try:
        app.relay()
        assert outcome(app) == by_ingest[0]
    finally:
        app.close()


def test_a_run_killed_midway_resumes_from_its_checkpoint(settings: Settings, tmp_path: Path) -> None:
    """SIGKILL to the whole run (command, JVM, workers) after a checkpoint taken midway; the same
    command again resumes from that checkpoint (reading only what follows it) and leaves what ingest
    leaves: the buffered lines and line numbers came back from the checkpoint, and what was written
    after it is applied once."""
    lines = random_events(USERS, 30_000, seed=63)
    lines.insert(200, "{not json\n")
    lines.insert(25_000, "{not json either\n")
    source = write_lines(tmp_path / "events.jsonl", lines)
    by_ingest = ingested(load_settings(home=tmp_path / "ingest"), ["ingest", str(source)])

    app = bootstrap(settings)
    try:
        prepare(app, USERS)
    finally:
        app.close()
    checkpoints = tmp_path / "checkpoints"
    command = [
        *COURSEINFRA, "flink", "run", "aggregator", "--source", str(source), "--parallelism", "2",
        "--checkpoint-dir", str(checkpoints), "--checkpoint-every", "0.5", "--json",
    ]  # fmt: skip
    env = {**Cli(settings).env, "COURSEINFRA_INGEST_CHUNK_SIZE": "200"}
    job = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while counted(settings) < len(lines) // 5:
            assert job.poll() is None, job.communicate()[1].decode()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        midway = time.time()
        while not any(m.stat().st_mtime > midway for m in checkpoints.glob("*/chk-*/_metadata")):
            assert job.poll() is None, "the job ended before a checkpoint midway: make the input longer"
            time.sleep(0.05)
        assert counted(settings) < len(lines), "the job ended before it could be stopped midway"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()  # and close its pipes

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 1, resumed.stderr  # two lines are not JSON
    assert "resuming from the checkpoint" in resumed.stderr
    assert resumed.stdout, resumed.stderr[-3000:]
    read_again = sum(counts.get("total", 0) for counts in json.loads(resumed.stdout)["jobs"].values())
    assert 0 < read_again < len(lines) * 0.9  # resumed midway, not from the start
    app = bootstrap(settings)
    try:
        app.relay()
        assert outcome(app) == by_ingest[0]
    finally:
        app.close()
    assert json.loads((checkpoints / "courseinfra-run.json").read_text())["finished"] is True


@pytest.mark.parametrize(
    ("recorded", "refused"),
    [
        ({"job": "aggregator", "parallelism": 2}, "at parallelism 2"),
        ({"job": "relation-cache", "parallelism": 1}, "unfinished run of relation-cache"),
    ],
)
def test_a_checkpoint_folder_of_another_unfinished_run_is_refused(
    settings: Settings, tmp_path: Path, recorded: dict[str, Any], refused: str
) -> None:
    """A checkpoint restores only into the job, source and parallelism it was taken of: a folder holding
    another unfinished run is refused in one line (exit 2) before any job starts."""
    source = write_lines(tmp_path / "events.jsonl", [])
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    run_file = checkpoints / "courseinfra-run.json"
    run_file.write_text(json.dumps({**recorded, "source": str(source.resolve()), "finished": False}))
    command = [*COURSEINFRA, "flink", "run", "aggregator", "--source", str(source)]
    done = subprocess.run(
        [*command, "--checkpoint-dir", str(checkpoints)],
        env=Cli(settings).env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert refused in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(run_file.read_text())["finished"] is False  # left as it was
