"""A naive baseline of the course metrics aggregator as issue 11 asks for it: the seed's algorithm one
event at a time, with only the rows the seed names, written with the plain driver.

Per event, in its own transaction: read the enrolment, merge the statuses, compute progress, update the
enrolment, upsert the course's and each touched unit's metrics, insert each AUDIT key whose condition
holds unless it is there (``ON CONFLICT DO NOTHING`` on a one-column key), commit. Its tables are its own
(``seed_*``, in a SQLite file of their own or the benchmark's PostgreSQL database), with the seed's keys
and nothing else: no ledger ids, channels or timestamps, no outbox, no relay. It is generous: course
structures come from memory, not from the relation cache. Its results are checked against the offline
replay of the same events (AUDIT count, completions, progress sum).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from courseinfra.domain.progress import (
    COMPLETED,
    IN_PROGRESS,
    CourseView,
    EnrolmentKey,
    EnrolmentStatus,
    percentage,
)

TABLES = ("seed_audit", "seed_activity", "seed_enrolments")
SCHEMA = (
    "CREATE TABLE seed_enrolments (userid TEXT, courseid TEXT, batchid TEXT, contentstatus TEXT NOT NULL, "
    "status INTEGER NOT NULL, progress INTEGER NOT NULL, completionpercentage INTEGER NOT NULL, "
    "completedon TEXT, PRIMARY KEY (userid, courseid, batchid))",
    "CREATE TABLE seed_activity (activity_type TEXT, activity_id TEXT, user_id TEXT, context_id TEXT, "
    "agg TEXT NOT NULL, PRIMARY KEY (activity_type, activity_id, user_id, context_id))",
    "CREATE TABLE seed_audit (key TEXT PRIMARY KEY)",
)


@dataclass(frozen=True, slots=True)
class SeedNaiveRun:
    events: int
    seconds: float
    emitted: int
    completed: int
    progress_sum: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds


class SeedNaive:
    """The baseline on one DB-API connection (sqlite3 or psycopg)."""

    def __init__(self, connection: Any, postgres: bool, views: Mapping[str, CourseView]) -> None:
        self.connection = connection
        self.views = views
        self.mark = mark = "%s" if postgres else "?"
        self.select = (
            "SELECT contentstatus, status, completedon FROM seed_enrolments "
            f"WHERE userid = {mark} AND courseid = {mark} AND batchid = {mark}"
        )
        self.update = (
            f"UPDATE seed_enrolments SET contentstatus = {mark}, status = {mark}, progress = {mark}, "
            f"completionpercentage = {mark}, completedon = {mark} "
            f"WHERE userid = {mark} AND courseid = {mark} AND batchid = {mark}"
        )
        self.upsert = (
            "INSERT INTO seed_activity (activity_type, activity_id, user_id, context_id, agg) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}) "
            "ON CONFLICT (activity_type, activity_id, user_id, context_id) DO UPDATE SET agg = excluded.agg"
        )
        self.audit = f"INSERT INTO seed_audit (key) VALUES ({mark}) ON CONFLICT (key) DO NOTHING"
        self.emitted = 0

    def create(self, enrolments: Iterable[EnrolmentKey]) -> None:
        """The tables and the enrolments, not started (not timed)."""
        cursor = self.connection.cursor()
        for table in TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in SCHEMA:
            cursor.execute(statement)
        mark = self.mark
        cursor.executemany(
            "INSERT INTO seed_enrolments (userid, courseid, batchid, contentstatus, status, progress, "
            f"completionpercentage) VALUES ({mark}, {mark}, {mark}, '{{}}', 0, 0, 0)",
            [(key.user_id, key.course_id, key.batch_id) for key in enrolments],
        )
        self.connection.commit()

    def handle(self, line: str) -> None:
        edata = orjson.loads(line)["edata"]
        user, course, batch = edata["userId"], edata["courseId"], edata["batchId"]
        view = self.views[course]
        cursor = self.connection.cursor()
        cursor.execute(self.select, (user, course, batch))
        row = cursor.fetchone()
        if row is None:
            self.connection.rollback()
            return
        merged: dict[str, int] = orjson.loads(row[0])
        for item in edata["contents"]:
            if item["status"] > merged.get(item["contentId"], -1):
                merged[item["contentId"]] = item["status"]
        completed = {content for content, status in merged.items() if status == COMPLETED}
        leaves = view.course_leaves
        required = view.required(course)
        done = len(completed & required)
        was_complete = row[1] == int(EnrolmentStatus.COMPLETED)
        complete = was_complete or (bool(required) and done == len(required))
        started = any(status >= IN_PROGRESS and content in leaves for content, status in merged.items())
        status = EnrolmentStatus.COMPLETED if complete else EnrolmentStatus.IN_PROGRESS if started else row[1]
        percent = 100 if was_complete else percentage(done, len(required))
        completed_on = row[2] or (time.strftime("%Y-%m-%dT%H:%M:%S") if complete else None)
        cursor.execute(
            self.update,
            (orjson.dumps(merged).decode(), int(status), done, percent, completed_on, user, course, batch),
        )
        context = f"cb:{batch}"
        prefix = f"{user}\x1f{course}\x1f{batch}\x1f"
        keys = []
        if started:
            keys.append(f"{prefix}Course\x1f{course}\x1fenrol")
        if complete:
            keys.append(f"{prefix}Course\x1f{course}\x1fcomplete")
        cursor.execute(self.upsert, ("Course", course, user, context, _agg(done, len(required), percent)))
        touched = [c for c in dict.fromkeys(i["contentId"] for i in edata["contents"]) if c in leaves]
        units = dict.fromkeys(
            unit for content in touched for unit in view.ancestors.get(content, ()) if unit != course
        )
        for unit in units:
            unit_required = view.required(unit)
            unit_done = len(completed & unit_required)
            unit_percent = percentage(unit_done, len(unit_required))
            cursor.execute(
                self.upsert,
                ("CourseUnit", unit, user, context, _agg(unit_done, len(unit_required), unit_percent)),
            )
            if unit_done >= 1:
                keys.append(f"{prefix}CourseUnit\x1f{unit}\x1fstart")
            if unit_required and unit_done == len(unit_required):
                keys.append(f"{prefix}CourseUnit\x1f{unit}\x1fcomplete")
        for content in touched:
            if merged[content] >= IN_PROGRESS:
                keys.append(f"{prefix}Content\x1f{content}\x1fstart")
            if merged[content] == COMPLETED:
                keys.append(f"{prefix}Content\x1f{content}\x1fcomplete")
        for key in keys:
            cursor.execute(self.audit, (key,))
            self.emitted += cursor.rowcount
        self.connection.commit()

    def outcome(self) -> tuple[int, int]:
        """Completed enrolments and the sum of their progress."""
        cursor = self.connection.cursor()
        cursor.execute(
            "SELECT COUNT(*) FILTER (WHERE status = 2), COALESCE(SUM(progress), 0) FROM seed_enrolments"
        )
        completed, progress = cursor.fetchone()
        return int(completed), int(progress)

    def drop(self) -> None:
        cursor = self.connection.cursor()
        for table in TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        self.connection.commit()


def _agg(done: int, total: int, progress: int) -> str:
    return orjson.dumps({"completedCount": done, "leafNodesCount": total, "progress": progress}).decode()


def run_seed_naive(
    engine: sa.Engine,
    home: Path,
    views: Mapping[str, CourseView],
    enrolments: Iterable[EnrolmentKey],
    lines: list[str],
) -> SeedNaiveRun:
    """The baseline over ``lines``: on PostgreSQL in the engine's database, on SQLite in a file of its
    own in ``home`` set up as the store is (WAL, synchronous NORMAL, the same page cache)."""
    postgres = engine.dialect.name == "postgresql"
    closing: Any
    if postgres:
        closing = engine.raw_connection()
        connection: Any = closing.driver_connection
    else:
        import sqlite3

        connection = closing = sqlite3.connect(home / "seed-naive.sqlite3", isolation_level="")
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "cache_size=-262144",
            "mmap_size=1073741824",
        ):
            connection.execute(f"PRAGMA {pragma}")
    naive = SeedNaive(connection, postgres, views)
    try:
        naive.create(enrolments)
        started = time.perf_counter()
        for line in lines:
            naive.handle(line)
        seconds = time.perf_counter() - started
        completed, progress = naive.outcome()
        return SeedNaiveRun(len(lines), seconds, naive.emitted, completed, progress)
    finally:
        naive.drop()
        closing.close()
