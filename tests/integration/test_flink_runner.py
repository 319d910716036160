"""The Flink runner leaves what ``courseinfra ingest`` leaves: the same file of events through
``courseinfra flink run aggregator --parallelism 2`` (a local MiniCluster) and through ``courseinfra
ingest`` gives the same enrolments, metrics, AUDIT set, kept failures and reported rejections (ADR 0023).

Needs the ``courseinfra[flink]`` extra (the Makefile installs it): without it the command fails, and so
does this test; it is never skipped."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from courseinfra.bootstrap import App, bootstrap
from courseinfra.services import content
from courseinfra.settings import Settings, load_settings
from tests.support.builders import collection, leaf, post_publish_event
from tests.support.cli import COURSEINFRA, Cli
from tests.support.workload import learners, prepare, progress_event, random_events, states_metrics_ledger

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
    """Run a command that ingests the workload: it exits 1 (some events fail) and prints its report."""
    done = subprocess.run(
        [*COURSEINFRA, *args, "--json"],
        env={**cli.env, "COURSEINFRA_INGEST_CHUNK_SIZE": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def ingested(settings: Settings, *command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outcome and the reported rejections of ``command`` over the workload on ``settings``."""
    app = bootstrap(settings)
    try:
        prepare(app, USERS)
        report = run(Cli(settings), *command)
        app.relay()
        return outcome(app), report["rejected"]
    finally:
        app.close()


def test_the_flink_runner_leaves_what_ingest_leaves(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(workload())
    by_ingest = ingested(load_settings(home=tmp_path / "ingest"), "ingest", str(events))
    by_flink = ingested(settings, "flink", "run", "aggregator", "--source", str(events), "--parallelism", "2")

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
