"""A small aggregator workload shared by the tests that compare two ways of running it: a course of three
units, one batch, enrolled learners, progress events in random order with duplicates and bad lines, and
what a run leaves behind (without its timestamps)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from courseinfra.bootstrap import App
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.progress import EnrolmentKey
from courseinfra.services import content, enrolments
from tests.support.builders import collection, leaf

UNITS = {f"unit{u}": [f"r{u}{n}" for n in range(4)] for u in range(3)}
COURSE = collection(
    "course",
    *(collection(unit, *(leaf(r) for r in leaves)) for unit, leaves in UNITS.items()),
    visibility="Default",
    channel="ch1",
)
LEAVES = [r for leaves in UNITS.values() for r in leaves]


def learners(count: int) -> list[str]:
    return [f"learner-{n:03d}" for n in range(count)]


def progress_event(user: str, contents: list[tuple[str, int]], mid: str) -> str:
    return json.dumps(
        {
            "eid": "BE_JOB_REQUEST",
            "mid": mid,
            "edata": {
                "action": "batch-enrolment-update",
                "userId": user,
                "courseId": "course",
                "batchId": "b1",
                "contents": [{"contentId": c, "status": s} for c, s in contents],
            },
        }
    )


def random_events(users: list[str], count: int, seed: int) -> list[str]:
    """``count`` progress events of ``users`` in random order (repeats and regressions included), each a
    line with its newline."""
    rng = random.Random(seed)
    lines = []
    for number in range(count):
        contents = [(rng.choice(LEAVES), rng.choice((1, 2, 2))) for _ in range(rng.randint(1, 3))]
        lines.append(progress_event(rng.choice(users), contents, f"m{number}") + "\n")
    return lines


def prepare(app: App, users: list[str]) -> None:
    """Publish the course, create batch b1 and enrol ``users``."""
    content.put_hierarchy(COURSE, app.uow_factory())
    content.publish("course", app.uow_factory())
    app.relay()
    enrolments.create_batch(CourseBatch("b1", "course", "Batch 1", datetime.now(UTC)), app.uow_factory())
    for user in users:
        enrolments.enrol(user, "b1", app.uow_factory())


def states_metrics_ledger(app: App, users: list[str]) -> dict[str, Any]:
    """Every enrolment's state, its metrics and the AUDIT ledger, without timestamps."""
    states = {}
    metrics = {}
    for user in users:
        key = EnrolmentKey(user, "course", "b1")
        state = enrolments.get_enrolment(key, app.uow_factory).state
        states[user] = (
            dict(state.content_status),
            state.progress,
            state.completion_percentage,
            state.status,
            state.completed_on is not None,
        )
        metrics[user] = {
            (m.activity_type, m.activity_id): m.agg for m in enrolments.activity(key, app.uow_factory)
        }
    ledger = sorted(
        (e.record.enrolment.user_id, e.record.object_type.value, e.record.object_id, e.record.action.value)
        for e in enrolments.audit_events(app.uow_factory, limit=1_000_000)
    )
    return {"states": states, "metrics": metrics, "ledger": ledger}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines), encoding="utf-8")
    return path
