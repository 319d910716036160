"""Benchmark of the Open edX intake (ADR 0022) on the embedded default: events/s of the consumer beside
its parts, and the delay from a legacy edit to its user group.

Run from the repository root as ``.venv/bin/python bench/openedx_intake.py [--events 2000]
[--edits 40] [--markdown]`` (it imports ``tests.support.legacy_links`` for the linked course).

Scenario (not timed): a course stored and published, ``--events`` learners in the directory and
enrolled, two user groups linked to two new local cohorts (Blue and Red). The LMS's side is played by
the local legacy tables: each learner is put into a cohort, and one genuine
``org.openedx.learning.cohort_membership.changed.v1`` entry per learner (Avro, as edx-event-bus-redis
writes it) is appended to the embedded bus.

Measured, in one process, ``time.perf_counter`` around the calls:

1. *consumer* (the product): ``consume(app, bus, [stream], once=True, count=500)``: read the entries in
   the consumer group, decode, apply through ingest (a targeted pull per event, the id recorded),
   acknowledge. Checked: the two groups equal the two cohorts; nothing pending; every event applied.
2. *bus and decoding alone* (the intake's own limit): the same entries sent again to a fresh stream, read,
   decoded (``EnvelopeReader``) and acknowledged, nothing applied.
3. *one event at a time*: ``app.groups.apply_legacy_event`` for each decoded event, without bus or
   ingest: a targeted pull per event and link (what the consumer did before it applied a batch's
   events together, one pull per link).
4. *naive* (the baseline): a full refresh of both linked groups for each event, as a trigger without
   a targeted pull would do, on the first ``--naive-events`` events (default 200), extrapolated per event.

Reconciliation (``--reconcile-members``, default 10,000): a third course's link of that many learners
whose user group mirrors its cohort (authority ``user_group``), then the LMS edited behind its back (1% of
the members removed from the cohort, as many others added); timed: ``app.groups.reconcile(group,
dry_run=True)`` (compare only), then ``reconcile(group)`` (the push that undoes the LMS's edits). Beside
them, the store's own limits in the same run: one read of the cohort's members
(``legacy.cohort_members``) and one full refresh of the link (a pull). Checked: after the push the cohort
equals the user group again.

Delay (``--edits`` edits): a consumer runs in a subprocess (``courseinfra openedx consume``, blocking
reads); each edit moves one learner to the other cohort in the legacy tables and appends its event; the
delay is the time until the user group shows the move (polled every millisecond). Beside it, the time
one full refresh of a linked group takes: a periodic refresh every P seconds leaves a group stale for
P/2 on average plus that.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.legacy_links import OPENEDX_COURSE, cohort_criteria, link_course, members

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.adapters.openedx_bus.envelopes import EnvelopeReader, entry_line
from courseinfra.adapters.openedx_bus.streams import SqliteOpenedxBus
from courseinfra.adapters.openedx_bus.wire import encode_entry, envelope_for
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.openedx_events import (
    CohortMembershipChanged,
    LmsCourse,
    LmsUser,
    OpenedxMessage,
)
from courseinfra.entrypoints.openedx_consumer import consume
from courseinfra.settings import load_settings

STREAM = "learning-cohort-membership"
COHORTS = ("blue", "red")


def event_entry(user: str, number: int, cohort: str) -> dict[str, bytes]:
    course = LmsCourse(course_key=OPENEDX_COURSE, display_name="Demo course", start=None, end=None)
    lms_user = LmsUser(id=number, username=user, email=f"{user}@example.org", name=user, is_active=True)
    event = CohortMembershipChanged(user=lms_user, course=course, cohort_name=cohort.title())
    return encode_entry(OpenedxMessage(envelope_for(event), event))


def seed(
    app: App, bus: SqliteOpenedxBus, learners: list[str]
) -> tuple[dict[str, str], list[dict[str, bytes]]]:
    ids = link_course(app, learners, [(name, cohort_criteria()) for name in COHORTS])
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    entries = []
    for number, user in enumerate(learners):
        cohort = COHORTS[number % 2]
        legacy.add_to_cohort(OPENEDX_COURSE, ids[cohort], [user])
        entries.append(event_entry(user, number, cohort))
    return ids, entries


def measure_throughput(
    app: App, bus: SqliteOpenedxBus, ids: dict[str, str], entries: list[dict[str, bytes]], naive_events: int
) -> dict[str, Any]:
    for entry in entries:
        bus.send(STREAM, entry)
    started = time.perf_counter()
    report = consume(app, bus, [STREAM], once=True, count=500)
    consumer = time.perf_counter() - started
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    problems = []
    for cohort in COHORTS:
        wanted = legacy.cohort_members(OPENEDX_COURSE, ids[cohort])
        if set(members(app, cohort)) != wanted:
            problems.append(f"{cohort}: the user group differs from the cohort")
    if bus.pending(STREAM):
        problems.append(f"{bus.pending(STREAM)} entries pending")
    if report.applied != len(entries):
        problems.append(f"applied {report.applied} of {len(entries)}")

    # The bus and the decoding alone, on a stream of its own.
    for entry in entries:
        bus.send(STREAM + "-copy", entry)
    reader = EnvelopeReader()
    started = time.perf_counter()
    events = []
    while found := bus.read([STREAM + "-copy"], count=500):
        for found_entry in found:
            message = reader.read(entry_line(found_entry))
            assert isinstance(message, OpenedxMessage)
            events.append(message.event)
        bus.ack(found)
    decoding = time.perf_counter() - started

    started = time.perf_counter()
    for event in events:
        app.groups.apply_legacy_event(event)
    pulls = time.perf_counter() - started

    sample = events[:naive_events]
    started = time.perf_counter()
    for _event in sample:
        for cohort in COHORTS:
            app.groups.refresh_group(cohort)
    naive = time.perf_counter() - started
    return {
        "events": len(entries),
        "consumer": consumer,
        "decoding": decoding,
        "pulls": pulls,
        "naive_events": len(sample),
        "naive": naive,
        "problems": problems,
    }


def measure_delay(
    app: App, home: Path, bus: SqliteOpenedxBus, ids: dict[str, str], learners: list[str], edits: int
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEINFRA_")}
    env["COURSEINFRA_HOME"] = str(home)
    consumer = subprocess.Popen(
        [sys.executable, "-m", "courseinfra", "openedx", "consume", "--topic", STREAM, "--consumer", "delay"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    delays = []
    try:
        time.sleep(3)  # its start-up is not a delay of an edit
        for number in range(edits):
            user = learners[number]
            now_in = "red" if user in members(app, "blue") else "blue"
            legacy.add_to_cohort(OPENEDX_COURSE, ids[now_in], [user])
            started = time.perf_counter()
            bus.send(STREAM, event_entry(user, 10_000_000 + number, now_in))
            while user not in members(app, now_in):
                if time.perf_counter() - started > 30 or consumer.poll() is not None:
                    consumer.terminate()
                    _, err = consumer.communicate(timeout=30)
                    with app.uow_factory().reading() as uow:
                        kept = [(f.code, f.reason) for f in uow.failed_events.list()]
                    raise RuntimeError(
                        f"edit {number} not seen after 30 s; kept {kept}; the consumer said: {err[-2000:]}"
                    )
                time.sleep(0.001)
            delays.append(time.perf_counter() - started)
    finally:
        consumer.terminate()
        consumer.communicate(timeout=30)
    started = time.perf_counter()
    app.groups.refresh_group("blue")
    refresh = time.perf_counter() - started
    ordered = sorted(delays)
    return {
        "edits": edits,
        "p50": statistics.median(ordered),
        "p95": ordered[max(0, int(len(ordered) * 0.95) - 1)],
        "max": ordered[-1],
        "refresh": refresh,
    }


def measure_reconcile(app: App, members_count: int) -> dict[str, Any]:
    course = "course-v1:DemoX+Reconcile+2026"
    learners = [f"r-learner-{n:06d}" for n in range(members_count)]
    criteria = {"type": "legacy_cohort", "operator": "member_of", "config": {"course_id": course}}
    ids = link_course(app, learners, [("reconciled", criteria)], course=course)
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    app.groups.change_legacy_members("reconciled", add=learners[: members_count // 2])
    # The LMS, behind courseinfra's back: 1% removed, as many of the others added.
    edits = max(1, members_count // 100)
    legacy.remove_from_cohort(course, ids["reconciled"], learners[:edits])
    legacy.add_to_cohort(course, ids["reconciled"], learners[members_count // 2 : members_count // 2 + edits])
    started = time.perf_counter()
    [compared] = app.groups.reconcile("reconciled", dry_run=True)
    dry_run = time.perf_counter() - started
    started = time.perf_counter()
    [pushed] = app.groups.reconcile("reconciled")
    push = time.perf_counter() - started
    problems = []
    if set(members(app, "reconciled")) != legacy.cohort_members(course, ids["reconciled"]):
        problems.append("after the push the cohort differs from the user group")
    if (compared.only_in_legacy_group, compared.only_in_user_group) != (edits, edits):
        problems.append(
            f"dry run found {compared.only_in_legacy_group}/{compared.only_in_user_group}, not {edits}/{edits}"
        )
    started = time.perf_counter()
    legacy.cohort_members(course, ids["reconciled"])
    read = time.perf_counter() - started
    started = time.perf_counter()
    app.groups.refresh_group("reconciled")
    refresh = time.perf_counter() - started
    return {
        "members": members_count // 2,
        "edits": edits,
        "dry_run": dry_run,
        "push": push,
        "action": pushed.action,
        "read": read,
        "refresh": refresh,
        "problems": problems,
    }


def report(
    throughput: dict[str, Any], delay: dict[str, Any], reconciled: dict[str, Any], args: argparse.Namespace
) -> str:
    n = throughput["events"]
    rows = [
        ("consumer: bus, decode, ingest, targeted pull, ack (the product)", throughput["consumer"], n),
        ("bus and decoding alone (the intake's own limit)", throughput["decoding"], n),
        ("one event at a time: apply_legacy_event per event, no bus", throughput["pulls"], n),
        (
            f"naive: a full refresh of both linked groups per event ({throughput['naive_events']:,} events)",
            throughput["naive"],
            throughput["naive_events"],
        ),
    ]
    lines = [
        f"Open edX intake benchmark (SQLite, embedded bus), {n:,} cohort events, {len(COHORTS)} linked cohorts; "
        f"Python {platform.python_version()}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "",
    ]
    if args.markdown:
        lines += ["| measurement | seconds | events/s |", "|---|---:|---:|"]
        lines += [f"| {label} | {seconds:.2f} | {count / seconds:,.0f} |" for label, seconds, count in rows]
    else:
        lines += [
            f"{label:<90} {seconds:8.2f} s {count / seconds:10,.0f} events/s"
            for label, seconds, count in rows
        ]
    lines += [
        "",
        f"Delay from a legacy edit to its user group ({delay['edits']} edits, a consumer in another process): "
        f"median {delay['p50'] * 1000:.0f} ms, 95th percentile {delay['p95'] * 1000:.0f} ms, "
        f"max {delay['max'] * 1000:.0f} ms; one full refresh of a linked group of {n // 2:,} members: "
        f"{delay['refresh'] * 1000:.0f} ms (a refresh every P seconds: stale P/2 on average, plus that)",
        "",
        f"Reconciliation of a link of {reconciled['members']:,} members after {reconciled['edits']:,} removals "
        f"and {reconciled['edits']:,} additions in the LMS: compare (dry run) {reconciled['dry_run'] * 1000:.0f} ms, "
        f"{reconciled['action']} {reconciled['push'] * 1000:.0f} ms; beside one read of the cohort's members "
        f"{reconciled['read'] * 1000:.0f} ms and one full refresh (pull) of the link {reconciled['refresh'] * 1000:.0f} ms",
        "",
        "Checks: "
        + (
            "; ".join(throughput["problems"] + reconciled["problems"])
            if throughput["problems"] or reconciled["problems"]
            else "every check holds"
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--naive-events", type=int, default=200)
    parser.add_argument("--reconcile-members", type=int, default=10_000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="courseinfra-bench-openedx-") as folder:
        home = Path(folder)
        app = bootstrap(load_settings(home=home))
        bus = SqliteOpenedxBus(home / "openedx-bus.sqlite3", "courseinfra", "bench")
        try:
            learners = [f"learner-{n:06d}" for n in range(args.events)]
            ids, entries = seed(app, bus, learners)
            throughput = measure_throughput(app, bus, ids, entries, args.naive_events)
            delay = measure_delay(app, home, bus, ids, learners, args.edits)
            reconciled = measure_reconcile(app, 2 * args.reconcile_members)
        finally:
            bus.close()
            app.close()
    print(report(throughput, delay, reconciled, args))
    return 1 if throughput["problems"] or reconciled["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
