"""Benchmark of course progress report generation on the embedded backend (SQLite).

Run as ``.venv/bin/python bench/reports.py --sizes 10000,100000,1000000 --markdown`` (the default sizes);
smoke test: ``.venv/bin/python bench/reports.py --sizes 2000,20000``.

Scenario, for each N of ``--sizes`` (deterministic, from ``--seed``), in a fresh ``load_settings(home=...)``:

- one TPD course (framework "TPD") of 5 first-level units of 4 leaves each, stored with
  ``content.put_hierarchy``, published with ``content.publish`` and ``app.relay()``; one batch of it
  (``enrolments.create_batch``);
- N learners seeded in bulk with SQLAlchemy Core ``insert()`` executemany in chunks (not through the
  services): a ``users`` row each (name, username, email, organisation); an active ``user_enrolments`` row
  each, consistent with a walk through the course's leaves in order: 20% not started (status 0, 0%),
  15% completed (status 2, 100%, ``completedon``, a certificate for 60% of them), the others started with
  0 to 19 of the 20 leaves done (status 1, 0..95%), ``contentstatus`` holding the leaves done (2) and the
  one opened (1); for every learner who started, a ``user_activity_agg`` row per unit touched
  (``CourseUnit``, context ``cb:<batch>``, ``{"completedCount", "leafNodesCount": 4, "progress"}``) and
  one ``Course`` row, as the aggregator writes them. Seeding is not measured; its time is printed.

Measured per size, each run in its own subprocess (so that peak RSS is per size and per measurement), after
the database file was read once to warm the OS page cache; ``--repeat`` runs of each (3 by default, the
three measurements interleaved), the fastest time and the largest peak RSS growth reported:

1. *streamed* (the product): ``generate_reports(app.uow_factory, app.report_archive(out),
   app.report_options, as_of=...)``: seconds, rows/s, peak RSS growth; checks: run succeeded,
   ``rows_written == N``, the CSV has N + 1 lines;
2. *raw read limit*: the reader's two queries (the page of enrolments LEFT JOIN users, then the range
   read of the page's unit progress), compiled from the same statements (checked equal to the SQL the
   reader sends) and run page by page (``page_size`` of the app's report options) on the sqlite3 DBAPI
   cursor, every row fetched and dropped: the store's own limit for reading these rows;
3. *naive*: everything in memory at once — every enrolment of the batch in one SELECT, the users of all
   those learners in one SELECT (``user_id IN`` a subquery of the batch's learners), every unit activity
   row of the batch in one SELECT, into lists and dicts — then the CSV with ``csv.writer``, same columns:
   seconds and peak RSS growth; checks: N rows, and the CSV is byte for byte the streamed one.

4. *rebuilt*: the same report of yesterday, a date that has ended, rebuilt from the progress stamps
   (``statustimes``; every seeded change is older than that date): seconds, rows/s; checks: its
   ``progress_basis`` is ``rebuilt`` (today's is ``current``) and its CSV is byte for byte today's.

Peak RSS growth: ``ru_maxrss`` after the measured call minus the resident size just before it (from
``/proc/self/statm``), or, where ``ru_maxrss`` did not move (the process's earlier peak was higher), the
peak a thread sampling ``/proc/self/statm`` every millisecond saw. ``--profile 100000`` adds one more
streamed run at that size under cProfile (not timed) and prints where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import gc
import hashlib
import json
import os
import platform
import pstats
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from courseinfra.adapters.sql.tables import user_activity_agg, user_enrolments, users
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE
from courseinfra.domain.progress import epoch_ms
from courseinfra.domain.reports import ReportUnit, RunStatus, header
from courseinfra.services import content, enrolments
from courseinfra.services.reports import file_stem, generate_reports
from courseinfra.settings import load_settings
from scratch import source_revision

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_SEED = 20261125
DEFAULT_REPEAT = 3
PHASES = ("seed", "raw", "streamed", "rebuilt", "naive", "profile")

COURSE_ID = "do_bench_tpd_course"
BATCH_ID = "bench-tpd-batch"
UNITS = 5
LEAVES_PER_UNIT = 4
LEAVES = UNITS * LEAVES_PER_UNIT
# Today: the progress recorded now. PAST: yesterday, a date that has ended, whose report is rebuilt from
# the progress stamps (every seeded change is older, so its CSV must equal today's).
AS_OF = datetime.now(UTC).date()
PAST = AS_OF - timedelta(days=1)
EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SEED_CHUNK = 20_000

NOT_STARTED_SHARE = 0.20
COMPLETED_SHARE = 0.15
CERTIFICATE_SHARE = 0.60
ORGANISATIONS = 40
FIRST_NAMES = ("Asha", "Bala", "Chitra", "Dev", "Esha", "Farid", "Gita", "Hari", "Indu", "Jay", "Kavya")
LAST_NAMES = ("Rao", "Krishnan", "Iyer", "Nair", "Das", "Sen", "Khan", "Pillai", "Shah", "Menon", "Bose")

AIM_SIZE = 100_000
AIM_SECONDS = 10.0
NOT_RUN = "—"
MIB = 1024 * 1024

LogFn = Callable[[str], None]
ProfileStats = dict[tuple[str, int, str], tuple[int, int, float, float, Any]]


# --------------------------------------------------------------------------------------------------
# Scenario and seeding
# --------------------------------------------------------------------------------------------------


def unit_id(unit: int) -> str:
    return f"{COURSE_ID}-u{unit + 1}"


def leaf_id(index: int) -> str:
    """Leaf ``index`` (0..19) of the course, in the order learners take them."""
    return f"{unit_id(index // LEAVES_PER_UNIT)}-r{index % LEAVES_PER_UNIT + 1}"


def course_hierarchy() -> dict[str, Any]:
    """The TPD course: 5 first-level units of 4 leaves each."""
    units = [
        {
            "identifier": unit_id(unit),
            "mimeType": COLLECTION_MIME_TYPE,
            "visibility": "Parent",
            "name": f"Module {unit + 1}",
            "children": [
                {
                    "identifier": leaf_id(unit * LEAVES_PER_UNIT + n),
                    "mimeType": "application/pdf",
                    "visibility": "Default",
                }
                for n in range(LEAVES_PER_UNIT)
            ],
        }
        for unit in range(UNITS)
    ]
    return {
        "identifier": COURSE_ID,
        "mimeType": COLLECTION_MIME_TYPE,
        "visibility": "Default",
        "name": "Teaching with stories (benchmark)",
        "framework": "TPD",
        "children": units,
    }


def report_units() -> list[ReportUnit]:
    return [ReportUnit(unit_id(unit), f"Module {unit + 1}") for unit in range(UNITS)]


def open_app(home: Path) -> App:
    return bootstrap(load_settings(home=home))


@dataclass
class SeedCounts:
    users: int = 0
    enrolments: int = 0
    activity: int = 0
    started: int = 0
    completed: int = 0
    certificates: int = 0


def learner_rows(
    user_id: str, index: int, rng: random.Random, counts: SeedCounts
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The ``users`` row, the ``user_enrolments`` row and the ``user_activity_agg`` rows of one learner."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    created = EPOCH - timedelta(days=rng.randrange(1, 400))
    user = {
        "user_id": user_id,
        "username": f"learner{index:07d}",
        "email": f"{first}.{last}.{index}@example.org".lower(),
        "name": f"{first} {last}",
        "organisation": f"org-{rng.randrange(ORGANISATIONS):02d}",
        "last_login_at": EPOCH + timedelta(minutes=rng.randrange(300 * 24 * 60)),
        "is_staff": False,
        "profile": {},
        "created_at": created,
        "updated_at": created,
    }
    enrolled = EPOCH + timedelta(minutes=rng.randrange(60 * 24 * 60))
    draw = rng.random()
    if draw < NOT_STARTED_SHARE:
        done, opened = 0, False
    elif draw < NOT_STARTED_SHARE + COMPLETED_SHARE:
        done, opened = LEAVES, False
    else:
        done, opened = rng.randrange(LEAVES), True
    started = opened or done > 0
    completed = done == LEAVES
    status = 2 if completed else 1 if started else 0
    content_status = {leaf_id(j): 2 for j in range(done)}
    if opened:
        content_status[leaf_id(done)] = 1
    last_read = max(done - 1, 0) if not opened else done
    updated = enrolled + timedelta(minutes=rng.randrange(1, 90 * 24 * 60)) if started else enrolled
    certificates: list[dict[str, str]] = []
    if completed and rng.random() < CERTIFICATE_SHARE:
        certificates = [{"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "name": "Completion"}]
    enrolment = {
        "userid": user_id,
        "courseid": COURSE_ID,
        "batchid": BATCH_ID,
        "active": True,
        "addedby": None,
        "enrolleddate": enrolled,
        "datetime": updated,
        "contentstatus": content_status,
        "lastreadcontentid": leaf_id(last_read) if started else None,
        "lastreadcontentstatus": content_status[leaf_id(last_read)] if started else None,
        "progress": done,
        "completionpercentage": 100 * done // LEAVES,
        "status": status,
        "completedon": updated if completed else None,
        "certificates": certificates,
        # As the aggregator stamps them: each leaf started and completed by the last update.
        "statustimes": {
            content: [epoch_ms(enrolled), epoch_ms(updated) if value == 2 else None]
            for content, value in content_status.items()
        },
    }
    activity: list[dict[str, Any]] = []
    if started:
        context = f"cb:{BATCH_ID}"
        touched = UNITS if completed else done // LEAVES_PER_UNIT + 1
        for unit in range(touched):
            unit_done = min(LEAVES_PER_UNIT, max(0, done - unit * LEAVES_PER_UNIT))
            agg = {
                "completedCount": unit_done,
                "leafNodesCount": LEAVES_PER_UNIT,
                "progress": 100 * unit_done // LEAVES_PER_UNIT,
            }
            activity.append(
                {
                    "activity_type": "CourseUnit",
                    "activity_id": unit_id(unit),
                    "user_id": user_id,
                    "context_id": context,
                    "agg": agg,
                    "agg_last_updated": {},
                }
            )
        course_agg = {"completedCount": done, "leafNodesCount": LEAVES, "progress": 100 * done // LEAVES}
        activity.append(
            {
                "activity_type": "Course",
                "activity_id": COURSE_ID,
                "user_id": user_id,
                "context_id": context,
                "agg": course_agg,
                "agg_last_updated": {},
            }
        )
    counts.users += 1
    counts.enrolments += 1
    counts.activity += len(activity)
    counts.started += started
    counts.completed += completed
    counts.certificates += bool(certificates)
    return user, enrolment, activity


def seed(home: Path, learners: int, seed_value: int, log: LogFn) -> dict[str, Any]:
    """The course and batch through the services, then the learners in bulk; return the counts."""
    started = time.perf_counter()
    app = open_app(home)
    try:
        content.put_hierarchy(course_hierarchy(), app.uow_factory())
        content.publish(COURSE_ID, app.uow_factory(), at=EPOCH)
        app.relay()
        enrolments.create_batch(
            CourseBatch(BATCH_ID, COURSE_ID, "Benchmark batch", EPOCH, start_date=EPOCH.date()),
            app.uow_factory(),
        )
        rng = random.Random(seed_value)
        ids = sorted(str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(learners))
        counts = SeedCounts()
        for offset in range(0, learners, SEED_CHUNK):
            user_rows, enrolment_rows, activity_rows = [], [], []
            for index in range(offset, min(offset + SEED_CHUNK, learners)):
                user, enrolment, activity = learner_rows(ids[index], index, rng, counts)
                user_rows.append(user)
                enrolment_rows.append(enrolment)
                activity_rows.extend(activity)
            with app.engine.begin() as connection:
                connection.execute(users.insert(), user_rows)
                connection.execute(user_enrolments.insert(), enrolment_rows)
                connection.execute(user_activity_agg.insert(), activity_rows)
            if (offset // SEED_CHUNK) % 10 == 9:
                log(f"seeded {counts.enrolments:,} learners")
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        database = Path(app.engine.url.database or "")
    finally:
        app.close()
    return {
        "seconds": time.perf_counter() - started,
        "users": counts.users,
        "enrolments": counts.enrolments,
        "activity": counts.activity,
        "started": counts.started,
        "completed": counts.completed,
        "certificates": counts.certificates,
        "database": str(database),
        "database_bytes": database.stat().st_size,
    }


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def current_rss() -> int:
    """Resident set size in bytes, from /proc/self/statm."""
    with open("/proc/self/statm", "rb") as stream:
        return int(stream.read().split()[1]) * resource.getpagesize()


def max_rss() -> int:
    """The process's peak resident set size so far, in bytes (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRss:
    """Peak RSS growth over a ``with`` block: see the module docstring."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.start = 0
        self.sampled_peak = 0
        self.max_before = 0
        self.max_after = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.sampled_peak = max(self.sampled_peak, current_rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.max_before = max_rss()
        self.start = current_rss()
        self.sampled_peak = self.start
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sampled_peak = max(self.sampled_peak, current_rss())
        self.max_after = max_rss()

    @property
    def growth(self) -> int:
        """Bytes: the peak during the block minus the resident size at its start."""
        peak = self.max_after if self.max_after > self.max_before else self.sampled_peak
        return max(0, max(peak, self.sampled_peak) - self.start)

    def as_json(self) -> dict[str, Any]:
        return {
            "rss_start_mib": self.start / MIB,
            "rss_growth_mib": self.growth / MIB,
            "ru_maxrss_moved": self.max_after > self.max_before,
        }


# --------------------------------------------------------------------------------------------------
# The three measurements (each runs in its own process)
# --------------------------------------------------------------------------------------------------


def file_digest(path: Path) -> tuple[int, str]:
    """Line count and SHA-256 of a file."""
    lines, digest = 0, hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            lines += block.count(b"\n")
            digest.update(block)
    return lines, digest.hexdigest()


def run_streamed(home: Path, out: Path, as_of: date = AS_OF) -> dict[str, Any]:
    """The product: ``generate_reports`` for the batch, timed, with its peak RSS growth (of today's
    date: the progress recorded; of a past date: rebuilt from the stamps)."""
    app = open_app(home)
    try:
        archive, options = app.report_archive(out), app.report_options
        with PeakRss() as memory:
            started = time.perf_counter()
            run = generate_reports(app.uow_factory, archive, options, as_of=as_of)
            seconds = time.perf_counter() - started
    finally:
        app.close()
    path = out / as_of.isoformat() / f"{file_stem(BATCH_ID)}.csv"
    lines, digest = file_digest(path)
    return {
        "seconds": seconds,
        "status": run.status.value,
        "progress_basis": run.outcome.get("progress_basis"),
        "succeeded": run.status is RunStatus.SUCCEEDED,
        "rows_written": run.rows_written,
        "csv_lines": lines,
        "csv_sha256": digest,
        "csv_bytes": path.stat().st_size,
        "page_size": options.page_size,
        **memory.as_json(),
    }


def function_label(key: tuple[str, int, str]) -> str:
    """A profiled function as ``package/path.py:line(name)``, shortened after ``src/`` or site-packages."""
    path, line, name = key
    for marker in ("/src/", "/site-packages/", "/lib/python"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})" if line else name


def run_profile(home: Path, out: Path, top: int = 15) -> dict[str, Any]:
    """The streamed run under cProfile: the top functions by own time and by cumulative time."""
    app = open_app(home)
    profiler = cProfile.Profile()
    try:
        archive, options = app.report_archive(out), app.report_options
        started = time.perf_counter()
        profiler.runcall(generate_reports, app.uow_factory, archive, options, as_of=AS_OF)
        seconds = time.perf_counter() - started
    finally:
        app.close()
    stats: ProfileStats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [
        (function_label(key), calls, own, cumulative) for key, (_, calls, own, cumulative, _) in stats.items()
    ]
    return {
        "seconds": seconds,
        "by_own_time": sorted(rows, key=lambda row: -row[2])[:top],
        "by_cumulative_time": sorted(rows, key=lambda row: -row[3])[:top],
    }


def profile_table(rows: Sequence[Sequence[Any]], total: float, markdown: bool) -> str:
    cells = [
        [str(label), f"{calls:,}", f"{own:.2f}", f"{cumulative:.2f}", f"{100 * cumulative / total:.0f}%"]
        for label, calls, own, cumulative in rows
    ]
    return render_table(
        ["function", "calls", "own (s)", "cumulative (s)", "cumulative share"], cells, markdown
    )


def reader_statements() -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The reader's two statements (see ``SqlReportReader``), with named parameters for what varies."""
    e, a = user_enrolments.c, user_activity_agg.c
    page = (
        sa.select(
            e.userid,
            e.courseid,
            e.enrolleddate,
            e.status,
            e.completionpercentage,
            e.completedon,
            e.certificates,
            users.c.name,
            users.c.email,
        )
        .select_from(user_enrolments.outerjoin(users, users.c.user_id == e.userid))
        .where(
            e.batchid == sa.bindparam("batch_id"), e.userid > sa.bindparam("after_user"), e.active.is_(True)
        )
        .order_by(e.userid)
        .limit(sa.bindparam("limit"))
    )
    progress = sa.select(a.user_id, a.activity_id, a.agg).where(
        a.activity_type == "CourseUnit",
        a.activity_id.in_([unit.unit_id for unit in report_units()]),
        a.user_id.between(sa.bindparam("first_user"), sa.bindparam("last_user")),
        a.context_id == sa.bindparam("context"),
    )
    return page, progress


@dataclass(frozen=True)
class DriverStatement:
    """A statement as the driver gets it: SQL text and a parameter tuple built from named values."""

    sql: str
    names: tuple[str, ...]
    fixed: dict[str, Any]

    @classmethod
    def of(cls, statement: sa.Select[Any], dialect: sa.Dialect, sample: dict[str, Any]) -> DriverStatement:
        state = statement.compile(dialect=dialect).construct_expanded_state(sample)
        return cls(state.statement, tuple(state.positiontup or ()), dict(state.parameters))

    def parameters(self, **values: Any) -> tuple[Any, ...]:
        merged = {**self.fixed, **values}
        return tuple(merged[name] for name in self.names)


def normalised(sql: str) -> str:
    return " ".join(sql.split())


def reader_sql(app: App, page_size: int) -> list[str]:
    """The SQL texts the product's reader sends for one page (untimed; to check the raw run's SQL)."""
    sent: list[str] = []

    def capture(*args: Any) -> None:
        sent.append(args[2])

    sa.event.listen(app.engine, "before_cursor_execute", capture)
    try:
        with app.uow_factory() as uow:
            uow.reports.learners(
                BATCH_ID, [unit.unit_id for unit in report_units()], after_user="", limit=page_size
            )
    finally:
        sa.event.remove(app.engine, "before_cursor_execute", capture)
    # The transaction's own BEGIN is not the reader's.
    return [normalised(sql) for sql in sent if not sql.startswith("BEGIN")]


def run_raw(home: Path) -> dict[str, Any]:
    """The reader's two queries page by page on the DBAPI cursor, every row fetched and dropped."""
    app = open_app(home)
    try:
        page_size = app.report_options.page_size
        page_statement, progress_statement = reader_statements()
        page = DriverStatement.of(
            page_statement, app.engine.dialect, {"batch_id": "", "after_user": "", "limit": 1}
        )
        progress = DriverStatement.of(
            progress_statement, app.engine.dialect, {"first_user": "", "last_user": "", "context": ""}
        )
        sent = reader_sql(app, page_size)
        same_sql = sent == [normalised(page.sql), normalised(progress.sql)]
        context = f"cb:{BATCH_ID}"
        raw = app.engine.raw_connection()
        try:
            cursor = raw.cursor()
            gc.collect()
            started = time.perf_counter()
            rows = activity_rows = pages = 0
            after = ""
            while True:
                found = cursor.execute(
                    page.sql, page.parameters(batch_id=BATCH_ID, after_user=after, limit=page_size)
                ).fetchall()
                if not found:
                    break
                pages += 1
                rows += len(found)
                first, after = found[0][0], found[-1][0]
                activity_rows += len(
                    cursor.execute(
                        progress.sql, progress.parameters(first_user=first, last_user=after, context=context)
                    ).fetchall()
                )
            seconds = time.perf_counter() - started
            cursor.close()
        finally:
            raw.close()
    finally:
        app.close()
    return {
        "seconds": seconds,
        "rows": rows,
        "activity_rows": activity_rows,
        "pages": pages,
        "page_size": page_size,
        "same_sql_as_reader": same_sql,
        "reader_sql": sent,
    }


def timestamp(value: datetime | None) -> str:
    """As the report writes it (SQLite returns the stored UTC wall time, without a zone)."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def clamp(value: int) -> int:
    return max(0, min(100, value))


def naive_report(connection: sa.Connection, path: Path) -> int:
    """What a simple implementation does: read the whole batch into memory, then write the CSV."""
    e, a = user_enrolments.c, user_activity_agg.c
    members = sa.select(e.userid).where(e.batchid == BATCH_ID, e.active.is_(True))
    learners = connection.execute(
        sa.select(e.userid, e.courseid, e.enrolleddate, e.completionpercentage, e.completedon, e.certificates)
        .where(e.batchid == BATCH_ID, e.active.is_(True))
        .order_by(e.userid)
    ).all()
    directory = {
        row.user_id: (row.name, row.email)
        for row in connection.execute(
            sa.select(users.c.user_id, users.c.name, users.c.email).where(users.c.user_id.in_(members))
        )
    }
    units = report_units()
    progress: dict[str, dict[str, int]] = {}
    for user_id, activity_id, agg in connection.execute(
        sa.select(a.user_id, a.activity_id, a.agg).where(
            a.activity_type == "CourseUnit",
            a.context_id == f"cb:{BATCH_ID}",
            a.activity_id.in_([unit.unit_id for unit in units]),
        )
    ):
        progress.setdefault(user_id, {})[activity_id] = int(agg.get("progress", 0))
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header(units))
        for row in learners:
            name, email = directory.get(row.userid, (None, None))
            touched = progress.get(row.userid, {})
            writer.writerow(
                [
                    row.userid,
                    name or "",
                    email or "",
                    timestamp(row.enrolleddate),
                    row.courseid,
                    clamp(row.completionpercentage),
                    timestamp(row.completedon),
                    "Issued" if row.certificates else "Not issued",
                    *(clamp(touched.get(unit.unit_id, 0)) for unit in units),
                ]
            )
    return len(learners)


def run_naive(home: Path, out: Path) -> dict[str, Any]:
    app = open_app(home)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "naive.csv"
    try:
        with PeakRss() as memory:
            started = time.perf_counter()
            with app.engine.connect() as connection:
                rows = naive_report(connection, path)
            seconds = time.perf_counter() - started
    finally:
        app.close()
    lines, digest = file_digest(path)
    return {"seconds": seconds, "rows": rows, "csv_lines": lines, "csv_sha256": digest, **memory.as_json()}


def run_phase(phase: str, learners: int, workdir: Path, seed_value: int, log: LogFn) -> dict[str, Any]:
    """One phase of one size, in this process; the result is printed as one JSON line."""
    home = workdir / "home"
    if phase == "seed":
        return seed(home, learners, seed_value, log)
    if phase == "raw":
        return run_raw(home)
    if phase == "streamed":
        return run_streamed(home, workdir / "streamed")
    if phase == "rebuilt":
        return run_streamed(home, workdir / "rebuilt", PAST)
    if phase == "naive":
        return run_naive(home, workdir / "naive")
    if phase == "profile":
        return run_profile(home, workdir / "profiled")
    raise ValueError(f"unknown phase {phase}")


# --------------------------------------------------------------------------------------------------
# The parent: one subprocess per size and measurement, then the report
# --------------------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    learners: int
    seed: dict[str, Any]
    raw: dict[str, Any]
    streamed: dict[str, Any]
    rebuilt: dict[str, Any]
    naive: dict[str, Any]
    profile: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def check(self) -> None:
        n, s, n_csv = self.learners, self.streamed, self.naive
        if not s["succeeded"]:
            self.problems.append(f"streamed run status {s['status']}")
        if s["rows_written"] != n:
            self.problems.append(f"streamed rows_written {s['rows_written']:,} != {n:,}")
        if s["csv_lines"] != n + 1:
            self.problems.append(f"streamed CSV has {s['csv_lines']:,} lines, not {n + 1:,}")
        if self.raw["rows"] != n:
            self.problems.append(f"raw read {self.raw['rows']:,} rows, not {n:,}")
        if not self.raw["same_sql_as_reader"]:
            self.problems.append("raw SQL differs from the reader's")
        if n_csv["rows"] != n or n_csv["csv_lines"] != n + 1:
            self.problems.append(f"naive wrote {n_csv['rows']:,} rows ({n_csv['csv_lines']:,} lines)")
        if n_csv["csv_sha256"] != s["csv_sha256"]:
            self.problems.append("naive CSV differs from the streamed CSV")
        if (s["progress_basis"], self.rebuilt["progress_basis"]) != ("current", "rebuilt"):
            self.problems.append(f"bases {s['progress_basis']} and {self.rebuilt['progress_basis']}")
        if self.rebuilt["csv_sha256"] != s["csv_sha256"]:
            self.problems.append("the CSV rebuilt as of yesterday differs from today's")


def child(phase: str, learners: int, workdir: Path, args: argparse.Namespace, log: LogFn) -> dict[str, Any]:
    """Run one phase in a new process of this script; return its JSON result."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one-size",
        str(learners),
        "--workdir",
        str(workdir),
        "--phase",
        phase,
        "--seed",
        str(args.seed),
    ]
    log(f"N={learners:,}: {phase}")
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def warm(path: Path) -> None:
    """Read a file once so that the measurements start from the same warm OS page cache."""
    with path.open("rb") as stream:
        while stream.read(1 << 24):
            pass


def best_of(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of the repeats, with every repeat's seconds and the largest peak RSS growth seen."""
    best = dict(min(runs, key=lambda run: float(run["seconds"])))
    best["all_seconds"] = [run["seconds"] for run in runs]
    if "rss_growth_mib" in best:
        best["rss_growth_mib"] = max(run["rss_growth_mib"] for run in runs)
        best["ru_maxrss_moved"] = all(run["ru_maxrss_moved"] for run in runs)
    return best


def measure_size(learners: int, workdir: Path, args: argparse.Namespace, log: LogFn) -> SizeResult:
    workdir.mkdir(parents=True, exist_ok=True)
    seeded = child("seed", learners, workdir, args, log)
    log(
        f"N={learners:,}: seeded in {seeded['seconds']:.1f} s ({seeded['activity']:,} activity rows, "
        f"{seeded['database_bytes'] / MIB:,.0f} MiB database)"
    )
    runs: dict[str, list[dict[str, Any]]] = {"raw": [], "streamed": [], "rebuilt": [], "naive": []}
    for repeat in range(args.repeat):
        for phase, done in runs.items():
            warm(Path(seeded["database"]))
            done.append(child(phase, learners, workdir, args, log))
            log(f"N={learners:,}: {phase} #{repeat + 1}: {done[-1]['seconds']:.2f} s")
    best = {phase: best_of(done) for phase, done in runs.items()}
    result = SizeResult(learners, seeded, best["raw"], best["streamed"], best["rebuilt"], best["naive"])
    if learners in args.profile:
        result.profile = child("profile", learners, workdir, args, log)
    result.check()
    return result


def short(n: int) -> str:
    """10000 -> 10k, 1000000 -> 1M."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    """A table as markdown (numbers right-aligned) or as aligned plain text."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main_table(results: Sequence[SizeResult], markdown: bool) -> str:
    headers = [
        "learners",
        "streamed (s)",
        "streamed rows/s",
        "streamed peak RSS growth (MiB)",
        "raw read (s)",
        "raw read rows/s",
        "streamed ÷ raw",
        "rebuilt, past date (s)",
        "rebuilt rows/s",
        "naive (s)",
        "naive peak RSS growth (MiB)",
    ]
    rows = []
    for r in results:
        n = r.learners
        rows.append(
            [
                f"{n:,}",
                f"{r.streamed['seconds']:.2f}",
                f"{n / r.streamed['seconds']:,.0f}",
                f"{r.streamed['rss_growth_mib']:.1f}",
                f"{r.raw['seconds']:.2f}",
                f"{n / r.raw['seconds']:,.0f}",
                f"{r.streamed['seconds'] / r.raw['seconds']:.1f}x",
                f"{r.rebuilt['seconds']:.2f}",
                f"{n / r.rebuilt['seconds']:,.0f}",
                f"{r.naive['seconds']:.2f}",
                f"{r.naive['rss_growth_mib']:.1f}",
            ]
        )
    return render_table(headers, rows, markdown)


def aim_line(results: Sequence[SizeResult]) -> str:
    by_size = {r.learners: r for r in results}
    aim = by_size.get(AIM_SIZE)
    if aim is None:
        speed = f"streamed: not run at {AIM_SIZE:,}"
    else:
        seconds = aim.streamed["seconds"]
        speed = f"streamed: {seconds:.2f} s, {'met' if seconds < AIM_SECONDS else 'MISSED'}"
    growth = [r.streamed["rss_growth_mib"] for r in results]
    flat = max(growth) <= max(2 * min(growth), min(growth) + 16)
    verdict = "flat" if flat else "NOT flat"
    return (
        f"Aim: {short(AIM_SIZE)} learners in under {AIM_SECONDS:.0f} s on SQLite ({speed}); memory flat "
        f"(peak RSS growth at {' / '.join(short(r.learners) for r in results)}: "
        f"{' / '.join(f'{g:.1f}' for g in growth)} MiB: {verdict}, i.e. the largest within 2x or 16 MiB "
        "of the smallest)"
    )


def runs_seconds(result: dict[str, Any]) -> str:
    return " / ".join(f"{value:.2f}" for value in result["all_seconds"]) + " s"


def report(results: Sequence[SizeResult], args: argparse.Namespace, wall: float) -> str:
    markdown: bool = args.markdown
    heading = "## " if markdown else ""
    out = [f"{heading}Course progress reports benchmark (SQLite)", ""]
    now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
    page_size = results[0].streamed["page_size"] if results else NOT_RUN
    out.append(
        f"- date: {now}; revision {args.revision}; Python {platform.python_version()}, "
        f"SQLAlchemy {sa.__version__}, SQLite {sqlite3.sqlite_version}\n"
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"CPU count {os.cpu_count()}, load average at the end "
        f"{', '.join(f'{load:.2f}' for load in os.getloadavg())}\n"
        f"- scenario: one TPD course of {UNITS} units x {LEAVES_PER_UNIT} leaves, one batch, N learners "
        f"(seed {args.seed}); report page size {page_size}; each figure from its own process, best "
        f"of {args.repeat} runs (peak RSS growth: the largest of them), warm OS page cache"
    )
    out += ["", main_table(results, markdown), "", aim_line(results), ""]
    out.append("Details and checks:")
    out.append("")
    for r in results:
        s, raw, naive, seeded = r.streamed, r.raw, r.naive, r.seed
        out.append(
            f"- N={r.learners:,}: seeded in {seeded['seconds']:.1f} s (not measured): "
            f"{seeded['users']:,} users, "
            f"{seeded['enrolments']:,} enrolments ({seeded['started']:,} started, {seeded['completed']:,} "
            f"completed, {seeded['certificates']:,} certificates), {seeded['activity']:,} activity rows; "
            f"database {seeded['database_bytes'] / MIB:,.0f} MiB"
        )
        out.append(
            f"  - streamed: status {s['status']}, rows_written {s['rows_written']:,}, CSV {s['csv_lines']:,} "
            f"lines ({s['csv_bytes'] / MIB:,.1f} MiB); RSS {s['rss_start_mib']:.0f} MiB before"
            f"{'' if s['ru_maxrss_moved'] else ' (peak from sampling)'}; runs {runs_seconds(s)}"
        )
        out.append(
            f"  - raw read: {raw['rows']:,} learner rows and {raw['activity_rows']:,} unit rows in "
            f"{raw['pages']:,} pages of {raw['page_size']:,}; SQL the same as the reader's: "
            f"{'yes' if raw['same_sql_as_reader'] else 'NO'}; runs {runs_seconds(raw)}"
        )
        rebuilt = r.rebuilt
        out.append(
            f"  - rebuilt as of {PAST.isoformat()}: status {rebuilt['status']}, basis "
            f"{rebuilt['progress_basis']}, CSV identical to today's: "
            f"{'yes' if rebuilt['csv_sha256'] == s['csv_sha256'] else 'NO'}; runs {runs_seconds(rebuilt)}"
        )
        out.append(
            f"  - naive: {naive['rows']:,} rows ({naive['rows'] / naive['seconds']:,.0f} rows/s), "
            f"RSS {naive['rss_start_mib']:.0f} MiB before; CSV identical to the streamed one: "
            f"{'yes' if naive['csv_sha256'] == s['csv_sha256'] else 'NO'}; runs {runs_seconds(naive)}"
        )
        out.append(f"  - {'; '.join(r.problems) if r.problems else 'every check holds'}")
    for r in results:
        if r.profile is None:
            continue
        total = r.profile["seconds"]
        out += [
            "",
            f"cProfile of the streamed run, N={r.learners:,} ({total:.1f} s under the profiler), "
            "by own time:",
            "",
            profile_table(r.profile["by_own_time"], total, markdown),
            "",
            "By cumulative time:",
            "",
            profile_table(r.profile["by_cumulative_time"], total, markdown),
        ]
    out += ["", f"Wall time of the whole run: {wall:.0f} s"]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("give comma-separated learner counts of at least 1")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark of course progress report generation on SQLite: the streamed product "
        "against the raw read limit and a naive in-memory implementation.",
        epilog="Smoke test: --sizes 2000,20000.",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="learner counts (default 10000,100000,1000000)",
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (databases, CSV files)")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="work folder (default: a new one under /tmp)"
    )
    parser.add_argument(
        "--profile",
        type=_sizes,
        default=[],
        metavar="SIZES",
        help="also cProfile one (untimed) streamed run at these of the sizes, e.g. 100000",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        help=f"runs of each measurement, each in its own process (default {DEFAULT_REPEAT}): the fastest "
        "time and the largest peak RSS growth are reported",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--one-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=PHASES, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.one_size is not None and (args.phase is None or args.workdir is None):
        parser.error("--one-size needs --phase and --workdir")
    return args


def logger(quiet: bool, prefix: str = "") -> LogFn:
    started = time.perf_counter()

    def log(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - started:7.1f} s] {prefix}{message}", file=sys.stderr, flush=True)

    return log


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one_size is not None:
        log = logger(args.quiet, f"  N={args.one_size:,} {args.phase}: ")
        result = run_phase(args.phase, args.one_size, args.workdir, args.seed, log)
        print(json.dumps(result))
        return 0
    args.revision = source_revision()
    log = logger(args.quiet)
    started = time.perf_counter()
    own_workdir = args.workdir is None
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="courseinfra-reports-bench-", dir="/tmp"))
    created: list[Path] = []
    try:
        results = []
        for learners in args.sizes:
            size_dir = workdir / f"n{learners}"
            created.append(size_dir)
            results.append(measure_size(learners, size_dir, args, log))
            if not args.keep:
                shutil.rmtree(size_dir, ignore_errors=True)
        print(report(results, args, time.perf_counter() - started))
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        elif own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for path in created:
                shutil.rmtree(path, ignore_errors=True)
    return 0 if all(not r.problems for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
