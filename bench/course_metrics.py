"""Benchmark of the course metrics aggregator, end to end, on the embedded backend and on PostgreSQL + Redis.

Run as ``.venv/bin/python bench/course_metrics.py [--events 1000000] [--learners 100000] [--markdown]``.

Scenario (deterministic, from ``--seed``):

- ``--courses`` courses of 20 to 200 leaves: modules (level 1) of 1 to 3 units (level 2) of 5 to 20
  leaves, ~3% of leaves optional; each stored with ``content.put_hierarchy``, published with
  ``content.publish`` and ``app.relay()`` (which builds the relation cache), one batch per course;
- ``--learners`` learners, each enrolled in 1 or 2 courses (popular courses more often), inserted in bulk
  into ``user_enrolments`` with SQLAlchemy Core (the values ``Enrolment``'s defaults give);
- ``--events`` ``batch-enrolment-update`` events (the Sunbird ``BE_JOB_REQUEST`` shape) in a JSON-lines
  file: each event picks an enrolment at random (a lognormal activity weight per enrolment, so that some
  learners finish their course), so the events of a learner are spread over the stream; the learner
  moves through the course's leaves in order, 1 to 3 contents an event, status 1 (opened) or 2 (done).

Measured per backend (setup, generation and the resets between the runs are not measured):

1. *end to end*: ``ingest(open(file), ...)`` then ``app.relay()`` (it publishes the AUDIT ledger's entries),
   for each ``--chunks`` size in this process, then at the largest size with each ``--workers`` count
   (``ingest --workers``: processes sharing the file by enrolment while this process relays beside them;
   1 is one worker process and the relay beside it), each from the same initial state; then checks:
   no rejected event, no pending outbox row or ledger entry, every ``completionpercentage`` within
   0..100, no duplicate ledger key, the ledger equals the AUDIT events the job counted and those an
   offline replay of the stream predicts;
2. *raw store limit*: the rows the job writes (one ``user_enrolments`` UPDATE per touched enrolment per
   chunk, one ``user_activity_agg`` upsert per metric, the new ``audit_ledger`` rows and the certificate
   requests' ``outbox`` rows) and the relay's reads and writes (the page of new ledger entries and the
   cursor move, the outbox rows' ``relayed_at`` marks), computed offline with the domain's ``aggregate``
   and written with plain driver ``executemany`` calls, one transaction per chunk (and one per chunk for
   the relay); only the database calls are timed;
3. *naive*: one transaction per event, as the seed describes the job: SELECT the enrolment, read the
   course's leaf nodes (and the touched units') from the cache with ``app.cache.get``, merge, compute,
   UPDATE, upsert each metric, check-then-insert each AUDIT event (its ledger row), commit; then
   ``app.relay()``. Run on the first ``--naive-events`` events and checked against the offline replay.

``--profile`` runs cProfile on the end-to-end run of the first ``--profile-events`` events of each backend
(chunk 1000) and prints where the time goes; ``--profile-only`` does only the setup and that.

Smoke test: ``--events 20000 --learners 2000`` (the naive run then takes the first 2,000 events).

Scratch stores: the PostgreSQL database of ``--database-url`` (``courseinfra_bench``) is dropped and
created again; the Redis database of ``--redis-url`` (db 13) is FLUSHDB'd before and after.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import os
import platform
import pstats
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import redis
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from courseinfra.adapters.sql.audit import ENTRY_BITS
from courseinfra.adapters.sql.enrolments import audit_marks
from courseinfra.adapters.sql.tables import (
    audit_pages,
    content_hierarchy,
    failed_events,
    job_counters,
    outbox,
    relay_cursors,
    user_activity_agg,
    user_enrolments,
)
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.cache_layout import (
    ancestors_key,
    leaf_nodes_key,
    members_of,
    optional_nodes_key,
    path_of,
)
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.events import CertificateRequested, Event
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE, compute_relations, parse_hierarchy
from courseinfra.domain.progress import (
    COMPLETED,
    IN_PROGRESS,
    AuditAction,
    AuditObject,
    AuditRecord,
    ContentUpdate,
    CourseView,
    EnrolmentKey,
    EnrolmentState,
    EnrolmentStatus,
    aggregate,
    percentage,
)
from courseinfra.entrypoints.workers import ingest_in_workers
from courseinfra.services import content, enrolments
from courseinfra.services.course_metrics import AUDIT_EVENTS, ENROLMENTS_UPDATED
from courseinfra.services.course_metrics import JOB_NAME as AGGREGATOR
from courseinfra.services.events.ingest import IngestReport, ingest
from courseinfra.settings import Settings, load_settings
from scratch import drop_database, recreate_database, source_revision
from seed_naive import SeedNaiveRun, run_seed_naive

DEFAULT_EVENTS = 1_000_000
DEFAULT_LEARNERS = 100_000
DEFAULT_COURSES = 50
DEFAULT_NAIVE_EVENTS = 20_000
DEFAULT_PROFILE_EVENTS = 100_000
DEFAULT_CHUNKS = (1000, 5000)
DEFAULT_WORKERS = (2,)
DEFAULT_SEED = 20240611
DEFAULT_DATABASE_URL = "postgresql+psycopg://courseinfra:courseinfra@127.0.0.1:5432/courseinfra_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
FORBIDDEN_REDIS_DBS = frozenset({15})
BACKENDS = ("embedded", "postgres")
RAW_CHUNK = 1000
NOT_RUN = "—"

AIM_EVENTS_PER_SECOND = {"embedded": 20_000, "postgres": 10_000}
AIM_SPEEDUP = 10.0

MIN_LEAVES, MAX_LEAVES = 20, 200

# The AUDIT ledger of the former design (migration 0009: a row per AUDIT event under a six-column unique
# key), created in the bench's own databases for the baselines that still write it: the raw limit of the
# former rows, beside the new one, and the naive run of the former design.
FORMER = sa.MetaData()
audit_ledger = sa.Table(
    "audit_ledger",
    FORMER,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("userid", sa.String(255), nullable=False),
    sa.Column("courseid", sa.String(255), nullable=False),
    sa.Column("batchid", sa.String(255), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(255), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(255), nullable=True),
    sa.Column("emitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("userid", "courseid", "batchid", "object_type", "object_id", "action"),
    sqlite_autoincrement=True,
)
MIN_UNIT, MAX_UNIT = 5, 20
MAX_UNITS_PER_MODULE = 3
OPTIONAL_SHARE = 0.03
TWO_COURSES_SHARE = 0.5
COURSE_POPULARITY_EXPONENT = 0.8  # course i is chosen with weight 1 / (i + 1) ** exponent
ACTIVITY_SIGMA = 1.3  # lognormal activity weight of an enrolment
COMPLETE_SHARE = 0.7  # a reported content is done (2), otherwise opened (1)
CHANNEL = "0126684405014528002"
LEAF_MIME_TYPES = ("application/pdf", "video/mp4", "video/x-youtube", "application/vnd.ekstep.ecml-archive")
EPOCH = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)


# --------------------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneratedCourse:
    """A generated course: its hierarchy, its one batch, and its leaves in the order learners take them."""

    course_id: str
    batch_id: str
    hierarchy: dict[str, Any]
    leaves: tuple[str, ...]
    units: int
    optional: int


@dataclass(slots=True)
class Scenario:
    """Everything generated for one run: courses, enrolments, and the events file."""

    courses: list[GeneratedCourse]
    enrolments: list[EnrolmentKey]
    enrolled_at: list[datetime]
    events_path: Path
    events: int
    contents_reported: int
    views: dict[str, CourseView] = field(default_factory=dict)


def _uuid(rng: random.Random) -> str:
    """A deterministic UUID-shaped identifier (Sunbird user ids are UUIDs)."""
    text = f"{rng.getrandbits(128):032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _unit_sizes(rng: random.Random, leaves: int) -> list[int]:
    """Unit sizes of 5 to 20 leaves adding up to ``leaves`` (a short remainder joins the last unit)."""
    sizes: list[int] = []
    while (placed := sum(sizes)) < leaves:
        size = min(rng.randint(MIN_UNIT, MAX_UNIT), leaves - placed)
        if size < MIN_UNIT and sizes:
            sizes[-1] += size
        else:
            sizes.append(size)
    return sizes


def generate_course(rng: random.Random, index: int, leaf_counter: Iterator[int]) -> GeneratedCourse:
    """One course of 20 to 200 leaves in two levels of units (modules, then units of 5 to 20 leaves)."""
    course_id = f"do_2130{index:021d}"
    sizes = _unit_sizes(rng, rng.randint(MIN_LEAVES, MAX_LEAVES))
    leaves: list[str] = []
    modules: list[dict[str, Any]] = []
    optional = 0
    unit_number = 0
    while unit_number < len(sizes):
        module_units: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, MAX_UNITS_PER_MODULE)):
            if unit_number >= len(sizes):
                break
            children: list[dict[str, Any]] = []
            for _ in range(sizes[unit_number]):
                leaf_id = f"do_3130{next(leaf_counter):021d}"
                leaf: dict[str, Any] = {
                    "identifier": leaf_id,
                    "mimeType": rng.choice(LEAF_MIME_TYPES),
                    "visibility": "Default",
                    "name": f"Resource {leaf_id[-6:]}",
                    "contentType": "Resource",
                    "channel": CHANNEL,
                }
                if rng.random() < OPTIONAL_SHARE:
                    leaf["relationalMetadata"] = {"optional": True}
                    optional += 1
                children.append(leaf)
                leaves.append(leaf_id)
            module_units.append(
                {
                    "identifier": f"{course_id}_u{unit_number:03d}",
                    "mimeType": COLLECTION_MIME_TYPE,
                    "visibility": "Parent",
                    "name": f"Unit {unit_number + 1}",
                    "contentType": "CourseUnit",
                    "children": children,
                }
            )
            unit_number += 1
        modules.append(
            {
                "identifier": f"{course_id}_m{len(modules):03d}",
                "mimeType": COLLECTION_MIME_TYPE,
                "visibility": "Parent",
                "name": f"Module {len(modules) + 1}",
                "contentType": "CourseUnit",
                "children": module_units,
            }
        )
    hierarchy = {
        "identifier": course_id,
        "mimeType": COLLECTION_MIME_TYPE,
        "visibility": "Default",
        "name": f"Course {index + 1}",
        "contentType": "Course",
        "channel": CHANNEL,
        "children": modules,
    }
    return GeneratedCourse(
        course_id=course_id,
        batch_id=f"01{index:017d}",
        hierarchy=hierarchy,
        leaves=tuple(leaves),
        units=len(sizes) + len(modules),
        optional=optional,
    )


def course_view(course: GeneratedCourse) -> CourseView:
    """The whole course as the aggregator sees it (every unit), for the offline replay."""
    relations = compute_relations(parse_hierarchy(course.hierarchy))
    return CourseView(
        course_id=course.course_id,
        leaf_nodes=relations.leaf_nodes,
        optional_nodes=relations.optional_nodes,
        ancestors=relations.ancestors,
        channel=CHANNEL,
    )


def generate_scenario(n_courses: int, n_learners: int, n_events: int, seed: int, workdir: Path) -> Scenario:
    """Courses, enrolments and the events file (``events.jsonl`` in ``workdir``), all from ``seed``."""
    rng = random.Random(seed)
    leaf_counter = iter(range(10**9))
    courses = [generate_course(rng, index, leaf_counter) for index in range(n_courses)]
    popularity = [1 / (index + 1) ** COURSE_POPULARITY_EXPONENT for index in range(n_courses)]
    keys: list[EnrolmentKey] = []
    enrolled_at: list[datetime] = []
    for _ in range(n_learners):
        user_id = _uuid(rng)
        wanted = 2 if n_courses > 1 and rng.random() < TWO_COURSES_SHARE else 1
        chosen: list[int] = []
        while len(chosen) < wanted:
            pick = rng.choices(range(n_courses), weights=popularity)[0]
            if pick not in chosen:
                chosen.append(pick)
        for pick in chosen:
            keys.append(EnrolmentKey(user_id, courses[pick].course_id, courses[pick].batch_id))
            enrolled_at.append(EPOCH + timedelta(seconds=rng.randrange(30 * 86400)))
    by_id = {course.course_id: course for course in courses}
    weights = [rng.lognormvariate(0.0, ACTIVITY_SIGMA) for _ in keys]
    cumulative: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    cursors = [0] * len(keys)
    picks = rng.choices(range(len(keys)), cum_weights=cumulative, k=n_events)
    path = workdir / "events.jsonl"
    reported = 0
    ets = int(EPOCH.timestamp() * 1000) + 40 * 86_400_000
    with path.open("wb") as out:
        for number, pick in enumerate(picks):
            key = keys[pick]
            leaves = by_id[key.course_id].leaves
            contents: list[dict[str, Any]] = []
            for _ in range(rng.randint(1, 3)):
                content_id = leaves[cursors[pick] % len(leaves)]
                status = COMPLETED if rng.random() < COMPLETE_SHARE else IN_PROGRESS
                contents.append({"contentId": content_id, "status": status})
                if status != COMPLETED:
                    break  # opened, not done: the learner's next event goes on with it
                cursors[pick] += 1
            reported += len(contents)
            stamp = ets + number * 7
            event = {
                "eid": "BE_JOB_REQUEST",
                "ets": stamp,
                "mid": f"LP.{stamp}.{_uuid(rng)}",
                "actor": {"id": "Course Batch Updater", "type": "System"},
                "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
                "object": {"id": f"{key.batch_id}_{key.user_id}", "type": "CourseBatchEnrolment"},
                "edata": {
                    "contents": contents,
                    "action": "batch-enrolment-update",
                    "iteration": 1,
                    "batchId": key.batch_id,
                    "userId": key.user_id,
                    "courseId": key.course_id,
                },
            }
            out.write(orjson.dumps(event))
            out.write(b"\n")
    scenario = Scenario(courses, keys, enrolled_at, path, n_events, reported)
    scenario.views = {course.course_id: course_view(course) for course in courses}
    return scenario


def read_events(path: Path, limit: int | None = None) -> Iterator[str]:
    """The lines of the events file, the first ``limit`` of them where given."""
    with path.open(encoding="utf-8") as lines:
        yield from lines if limit is None else islice(lines, limit)


# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------


@dataclass
class Backend:
    """A backend to measure: its settings, and how to make its stores empty before and after."""

    name: str
    settings: Settings
    database_url: str | None = None
    redis_url: str | None = None

    def prepare(self) -> None:
        """Drop and create the scratch PostgreSQL database; FLUSHDB the scratch Redis database."""
        if self.database_url:
            recreate_database(self.database_url)
        if self.redis_url:
            flush_redis(self.redis_url)

    def cleanup(self, keep: bool) -> None:
        """FLUSHDB the scratch Redis database; drop the scratch database unless ``keep``."""
        if self.redis_url:
            flush_redis(self.redis_url)
        if self.database_url and not keep:
            drop_database(self.database_url)


def flush_redis(url: str) -> None:
    """FLUSHDB the Redis database of ``url`` (never the test suite's)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        if int(client.connection_pool.connection_kwargs.get("db", 0)) in FORBIDDEN_REDIS_DBS:
            raise SystemExit(f"error: refusing to FLUSHDB {url}; give a scratch Redis database")
        client.flushdb()
    finally:
        client.close()


def make_backends(names: Sequence[str], args: argparse.Namespace, home: Path) -> list[Backend]:
    """The backends named on the command line, each with its own settings home under ``home``."""
    backends: list[Backend] = []
    for name in names:
        folder = home / name
        folder.mkdir(parents=True, exist_ok=True)
        if name == "embedded":
            settings = load_settings(home=folder, database_url=None, redis_url=None)
            backends.append(Backend(name, settings))
        else:
            settings = load_settings(home=folder, database_url=args.database_url, redis_url=args.redis_url)
            backends.append(Backend(name, settings, args.database_url, args.redis_url))
    return backends


# --------------------------------------------------------------------------------------------------
# Setup and reset (not measured)
# --------------------------------------------------------------------------------------------------


def setup_app(backend: Backend, scenario: Scenario) -> App:
    """Bootstrap the backend, publish every course (the relay builds the relation cache), create one
    batch per course, and insert every enrolment in bulk."""
    backend.prepare()
    app = bootstrap(backend.settings, publish_on_commit=False)  # the relay is timed apart
    FORMER.create_all(app.engine)
    for course in scenario.courses:
        content.put_hierarchy(course.hierarchy, app.uow_factory())
        content.publish(course.course_id, app.uow_factory(), at=EPOCH)
        app.relay()
        enrolments.create_batch(
            CourseBatch(course.batch_id, course.course_id, f"Batch of {course.course_id}", EPOCH),
            app.uow_factory(),
        )
    rows: list[dict[str, Any]] = [
        {
            "userid": key.user_id,
            "courseid": key.course_id,
            "batchid": key.batch_id,
            "active": True,
            "addedby": None,
            "enrolleddate": at,
            "datetime": at,
            "contentstatus": {},
            "lastreadcontentid": None,
            "lastreadcontentstatus": None,
            "progress": 0,
            "completionpercentage": 0,
            "status": int(EnrolmentStatus.NOT_STARTED),
            "completedon": None,
            "certificates": [],
        }
        for key, at in zip(scenario.enrolments, scenario.enrolled_at, strict=True)
    ]
    with app.engine.begin() as connection:
        for start in range(0, len(rows), 10_000):
            connection.execute(user_enrolments.insert(), rows[start : start + 10_000])
    reset_progress(app)
    return app


def reset_progress(app: App) -> None:
    """Back to the state before any event: enrolments as enrolled, no metrics, ledger, outbox rows,
    kept events or counters.

    PostgreSQL: the emptied tables are TRUNCATEd (so that they read as never analyzed, as in a fresh
    database: an ANALYZE of an empty ``audit_ledger`` would plan sequential scans of a table that grows
    to millions of rows) and ``user_enrolments`` is VACUUM ANALYZEd. SQLite: a WAL checkpoint.
    """
    emptied = (user_activity_agg, audit_pages, audit_ledger, outbox, failed_events, job_counters)
    postgres = app.engine.dialect.name == "postgresql"
    with app.engine.begin() as connection:
        if postgres:
            connection.exec_driver_sql("TRUNCATE " + ", ".join(table.name for table in emptied))
        else:
            for table in emptied:
                connection.execute(table.delete())
        connection.execute(
            user_enrolments.update().values(
                contentstatus={},
                status=int(EnrolmentStatus.NOT_STARTED),
                progress=0,
                completionpercentage=0,
                completedon=None,
                lastreadcontentid=None,
                lastreadcontentstatus=None,
                datetime=user_enrolments.c.enrolleddate,
                auditmarks={},
            )
        )
        connection.execute(relay_cursors.update().values(position=0))
    if postgres:
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE user_enrolments")
    else:
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    gc.collect()


# --------------------------------------------------------------------------------------------------
# Checks after a run
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """What the stores hold after a run."""

    ledger_rows: int
    duplicate_ledger_keys: int
    out_of_range_percentages: int
    min_percentage: int
    max_percentage: int
    started_enrolments: int
    completed_enrolments: int
    progress_sum: int
    activity_rows: int
    pending_outbox: int
    certificate_requests: int
    kept_failed_events: int

    def problems(self) -> list[str]:
        """Every check that does not hold, in words."""
        found = []
        if self.duplicate_ledger_keys:
            found.append(f"{self.duplicate_ledger_keys} duplicate ledger keys")
        if self.out_of_range_percentages:
            found.append(f"{self.out_of_range_percentages} completionpercentage outside 0..100")
        if self.pending_outbox:
            found.append(f"{self.pending_outbox} outbox rows or AUDIT ledger entries not relayed")
        if self.kept_failed_events:
            found.append(f"{self.kept_failed_events} events kept as failed")
        if self.certificate_requests != self.completed_enrolments:
            found.append(
                f"{self.certificate_requests} certificate requests for {self.completed_enrolments} completions"
            )
        return found


def audit_keys(connection: sa.Connection) -> Iterator[tuple[str, ...]]:
    """The key of every AUDIT event kept: the log's entries, and the former design's ledger rows."""
    after = 0
    while True:
        pages = connection.execute(
            sa.select(audit_pages.c.id, audit_pages.c.courseid, audit_pages.c.entries)
            .where(audit_pages.c.id > after)
            .order_by(audit_pages.c.id)
            .limit(100)
        ).all()
        for page in pages:
            for user, batch, object_type, object_id, action in orjson.loads(page.entries):
                yield (user, page.courseid, batch, object_type, object_id, action)
        if len(pages) < 100:
            break
        after = pages[-1].id
    a = audit_ledger.c
    for row in connection.execute(
        sa.select(a.userid, a.courseid, a.batchid, a.object_type, a.object_id, a.action)
    ):
        yield tuple(row)


def check_stores(engine: sa.Engine) -> StoreCheck:
    """Count the AUDIT events kept (and their duplicate keys), check every completionpercentage, count
    the rest."""
    e = user_enrolments.c
    p = audit_pages.c
    cursor = sa.select(relay_cursors.c.position).where(relay_cursors.c.name == "audit").scalar_subquery()
    with engine.connect() as connection:

        def scalar(query: Any) -> int:
            return int(connection.execute(query).scalar_one() or 0)

        seen: set[int] = set()
        kept = duplicates = 0
        for key in audit_keys(connection):
            kept += 1
            digest = hash(key)
            duplicates += digest in seen
            seen.add(digest)
        del seen
        low, high = connection.execute(
            sa.select(sa.func.min(e.completionpercentage), sa.func.max(e.completionpercentage))
        ).one()
        return StoreCheck(
            ledger_rows=kept,
            duplicate_ledger_keys=duplicates,
            out_of_range_percentages=scalar(
                sa.select(sa.func.count()).where(
                    sa.or_(e.completionpercentage < 0, e.completionpercentage > 100)
                )
            ),
            min_percentage=int(low or 0),
            max_percentage=int(high or 0),
            started_enrolments=scalar(
                sa.select(sa.func.count()).where(e.status != int(EnrolmentStatus.NOT_STARTED))
            ),
            completed_enrolments=scalar(
                sa.select(sa.func.count()).where(e.status == int(EnrolmentStatus.COMPLETED))
            ),
            progress_sum=scalar(sa.select(sa.func.coalesce(sa.func.sum(e.progress), 0))),
            activity_rows=scalar(sa.select(sa.func.count()).select_from(user_activity_agg)),
            pending_outbox=scalar(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.relayed_at.is_(None))
            )
            + scalar(
                sa.select(sa.func.coalesce(sa.func.sum(p.size), 0)).where(
                    p.id * (1 << ENTRY_BITS) + p.size - 1 > sa.func.coalesce(cursor, 0)
                )
            ),
            certificate_requests=scalar(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(outbox.c.event_type == CertificateRequested.event_type)
            ),
            kept_failed_events=scalar(sa.select(sa.func.count()).select_from(failed_events)),
        )


# --------------------------------------------------------------------------------------------------
# Offline replay: what the job must write, chunk by chunk (used by the raw limit and the checks)
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ChunkWrites:
    """The rows one chunk of events makes the job write, as plain values."""

    events: int
    enrolments: list[EnrolmentState]
    metrics: list[tuple[str, str, str, str, dict[str, int]]]
    ledger: list[tuple[AuditRecord, str | None]]
    outbox: list[Event]

    @property
    def rows(self) -> int:
        """Rows written: the relay's marks (one per outbox row) and its cursor move included."""
        cursor_moves = 1 if self.ledger else 0
        return (
            len(self.enrolments) + len(self.metrics) + len(self.ledger) + 2 * len(self.outbox) + cursor_moves
        )


@dataclass
class Replay:
    """The aggregator's outcome computed in memory with the domain's ``aggregate``: states, the ledger
    keys, and per chunk the rows the job writes."""

    views: Mapping[str, CourseView]
    states: dict[EnrolmentKey, EnrolmentState] = field(default_factory=dict)
    ledger: set[tuple[str, ...]] = field(default_factory=set)
    enrolment_updates: int = 0

    def chunk(self, lines: Sequence[str], now: datetime) -> ChunkWrites:
        """Apply one chunk as the job does (grouped by enrolment, one aggregate each)."""
        grouped: dict[EnrolmentKey, list[ContentUpdate]] = {}
        for line in lines:
            edata = orjson.loads(line)["edata"]
            key = EnrolmentKey(edata["userId"], edata["courseId"], edata["batchId"])
            grouped.setdefault(key, []).extend(
                ContentUpdate(item["contentId"], item["status"]) for item in edata["contents"]
            )
        writes = ChunkWrites(len(lines), [], [], [], [])
        metrics: dict[tuple[str, str, str, str], dict[str, int]] = {}
        for key, updates in grouped.items():
            view = self.views[key.course_id]
            state = self.states.get(key) or EnrolmentState(key=key)
            result = aggregate(state, updates, view, now)
            self.states[key] = result.state
            writes.enrolments.append(result.state)
            for metric in result.metrics:
                metrics[(metric.activity_type, metric.activity_id, metric.user_id, metric.context_id)] = (
                    metric.agg
                )
            for record in result.audits:
                if record.key in self.ledger:
                    continue
                self.ledger.add(record.key)
                writes.ledger.append((record, view.channel))
                if record.object_type is AuditObject.COURSE and record.action is AuditAction.COMPLETE:
                    writes.outbox.append(
                        CertificateRequested(
                            user_id=key.user_id,
                            course_id=key.course_id,
                            batch_id=key.batch_id,
                            completed_on=(result.state.completed_on or now).isoformat(),
                            occurred_at=now,
                        )
                    )
        writes.metrics = [(*metric_key, agg) for metric_key, agg in metrics.items()]
        self.enrolment_updates += len(writes.enrolments)
        return writes

    def run(self, lines: Iterable[str], chunk_size: int) -> Iterator[ChunkWrites]:
        """Every chunk of ``lines``, in order."""
        iterator = iter(lines)
        while chunk := list(islice(iterator, chunk_size)):
            yield self.chunk(chunk, datetime.now(UTC))

    @property
    def completed(self) -> int:
        """Enrolments completed in the replay."""
        return sum(state.status is EnrolmentStatus.COMPLETED for state in self.states.values())

    @property
    def progress_sum(self) -> int:
        """The sum of ``progress`` over the replay's enrolments."""
        return sum(state.progress for state in self.states.values())


def expected_outcome(scenario: Scenario, limit: int | None) -> Replay:
    """The replay of the first ``limit`` events (all where None) in one pass; the final states and the
    set of AUDIT events do not depend on how the stream is cut into chunks."""
    replay = Replay(scenario.views)
    for _ in replay.run(read_events(scenario.events_path, limit), 10_000):
        pass
    return replay


# --------------------------------------------------------------------------------------------------
# 1. End to end
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndToEnd:
    """One end-to-end run: ingest, then relay."""

    chunk: int
    events: int
    ingest_seconds: float
    relay_seconds: float
    relayed: int
    audit_counted: int
    enrolments_updated: int
    rejected: int
    check: StoreCheck
    workers: int = 0

    @property
    def label(self) -> str:
        """``chunk C`` and, with worker processes, how many."""
        return f"chunk {self.chunk}" + (f", {self.workers} workers + relay" if self.workers else "")

    @property
    def seconds(self) -> float:
        """Ingest and relay."""
        return self.ingest_seconds + self.relay_seconds

    @property
    def rate(self) -> float:
        """Events per second, the relay included."""
        return self.events / self.seconds


def progress_logger(log: Callable[[str], None], label: str, every: int = 100_000) -> Callable[[int], None]:
    """An ``on_progress`` callback that logs every ``every`` events."""
    done = [0, every]

    def on_progress(count: int) -> None:
        done[0] += count
        if done[0] >= done[1]:
            log(f"{label}: {done[0]:,} events")
            done[1] += every

    return on_progress


def run_end_to_end(
    app: App,
    scenario: Scenario,
    chunk: int,
    log: Callable[[str], None],
    limit: int | None = None,
    workers: int = 0,
) -> EndToEnd:
    """``ingest`` the events file with ``chunk`` (in ``workers`` processes, as ``courseinfra ingest
    --workers``, this process relaying meanwhile; 0: in this process) then ``app.relay()``, timed; then
    check the stores."""
    events = scenario.events if limit is None else min(limit, scenario.events)
    gc.collect()
    on_progress = progress_logger(log, f"{app.engine.dialect.name} ingest chunk {chunk}, {workers} workers")
    started = time.perf_counter()
    report: IngestReport
    if workers:
        if limit is not None:
            raise ValueError("the workers read the whole file")
        report = ingest_in_workers(
            app.settings,
            scenario.events_path,
            "bench",
            workers,
            chunk_size=chunk,
            on_progress=on_progress,
            relay=app.relay,
        )
    else:
        report = ingest(
            read_events(scenario.events_path, limit),
            "bench",
            app.router,
            app.uow_factory,
            chunk_size=chunk,
            on_progress=on_progress,
        )
    ingested = time.perf_counter()
    relayed = app.relay()
    relay_seconds = time.perf_counter() - ingested
    counts = report.counters.job(AGGREGATOR).counts
    return EndToEnd(
        chunk=chunk,
        workers=workers,
        events=events,
        ingest_seconds=ingested - started,
        relay_seconds=relay_seconds,
        relayed=relayed,
        audit_counted=counts.get(AUDIT_EVENTS, 0),
        enrolments_updated=counts.get(ENROLMENTS_UPDATED, 0),
        rejected=len(report.rejected),
        check=check_stores(app.engine),
    )


# --------------------------------------------------------------------------------------------------
# 2. Raw store limit
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawLimit:
    """The job's writes as plain executemany calls: rows, events and the time spent in the store."""

    events: int
    rows: int
    rows_by_kind: dict[str, int]
    seconds: float
    seconds_by_kind: dict[str, float]
    expected: Replay

    @property
    def rows_per_second(self) -> float:
        """Rows written per second of store time."""
        return self.rows / self.seconds

    @property
    def events_per_second(self) -> float:
        """Events whose rows were written per second of store time."""
        return self.events / self.seconds


#: The AUDIT designs the raw limit writes: the job's (a page per chunk and course, marks in the
#: enrolment row; ADR 0018) and the former one (a ledger row per AUDIT event under a unique key).
PAGES, LEDGER = "pages", "ledger"


class RawWriter:
    """Plain SQL for the job's writes on one dialect, executed with the driver's executemany, with the
    AUDIT events of ``design``."""

    def __init__(self, dialect: str, design: str = PAGES) -> None:
        self.postgres = dialect == "postgresql"
        self.design = design
        mark = "%s" if self.postgres else "?"
        jsonb = "::jsonb" if self.postgres else ""
        json = "::json" if self.postgres else ""

        def marks(count: int) -> str:
            return ", ".join([mark] * count)

        self.update_enrolment = (
            f"UPDATE user_enrolments SET contentstatus = {mark}{jsonb}, status = {mark}, progress = {mark}, "
            f"completionpercentage = {mark}, completedon = {mark}, lastreadcontentid = {mark}, "
            f"lastreadcontentstatus = {mark}, datetime = {mark}"
            + (f", auditmarks = {mark}{json} " if design == PAGES else " ")
            + f"WHERE userid = {mark} AND courseid = {mark} AND batchid = {mark}"
        )
        self.upsert_metric = (
            "INSERT INTO user_activity_agg (activity_type, activity_id, user_id, context_id, agg, "
            f"agg_last_updated) VALUES ({marks(4)}, {mark}{json}, {mark}{json}) "
            "ON CONFLICT (activity_type, activity_id, user_id, context_id) DO UPDATE SET "
            "agg = excluded.agg, agg_last_updated = excluded.agg_last_updated"
        )
        self.insert_ledger = (
            "INSERT INTO audit_ledger (userid, courseid, batchid, object_type, object_id, action, channel, "
            f"emitted_at) VALUES ({marks(8)})"
        )
        self.ledger_page = (
            "SELECT id, userid, courseid, batchid, object_type, object_id, action, channel, emitted_at "
            f"FROM audit_ledger WHERE id > (SELECT position FROM relay_cursors WHERE name = 'audit') "
            f"ORDER BY id LIMIT {mark}"
        )
        self.insert_page = (
            f"INSERT INTO audit_pages (courseid, channel, emitted_at, size, entries) VALUES ({marks(5)})"
        )
        self.cursor = "SELECT position FROM relay_cursors WHERE name = 'audit'"
        self.pages_after = (
            f"SELECT id, courseid, channel, emitted_at, size, entries FROM audit_pages WHERE id >= {mark} "
            "ORDER BY id"
        )
        self.move_cursor = (
            f"UPDATE relay_cursors SET position = {mark}, updated_at = {mark} WHERE name = 'audit'"
        )
        self.insert_outbox = (
            "INSERT INTO outbox (event_type, key, payload, created_at, attempts) "
            f"VALUES ({mark}, {mark}, {mark}{jsonb}, {mark}, 0)"
        )
        self.pending = f"SELECT id FROM outbox WHERE relayed_at IS NULL ORDER BY id LIMIT {mark}"
        self.mark_relayed = (
            f"UPDATE outbox SET relayed_at = {mark}, attempts = attempts + 1, last_error = NULL "
            f"WHERE id = {mark}"
        )

    def stamp(self, value: datetime | None) -> Any:
        """A timestamp as the driver takes it (SQLAlchemy's text format on SQLite)."""
        if value is None or self.postgres:
            return value
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def parameters(self, writes: ChunkWrites, now: datetime) -> dict[str, list[tuple[Any, ...]]]:
        """The executemany parameters of one chunk (encoding is not timed)."""
        at = self.stamp(now)
        ms = int(now.timestamp() * 1000)
        return {
            "enrolments": [
                (
                    orjson.dumps(dict(s.content_status)).decode(),
                    int(s.status),
                    s.progress,
                    s.completion_percentage,
                    self.stamp(s.completed_on),
                    s.last_read_content_id,
                    s.last_read_content_status,
                    self.stamp(s.last_updated),
                    *((orjson.dumps(audit_marks(s)).decode(),) if self.design == PAGES else ()),
                    s.key.user_id,
                    s.key.course_id,
                    s.key.batch_id,
                )
                for s in writes.enrolments
            ],
            "metrics": [
                (
                    kind,
                    activity,
                    user,
                    context,
                    orjson.dumps(agg).decode(),
                    orjson.dumps(dict.fromkeys(agg, ms)).decode(),
                )
                for kind, activity, user, context, agg in writes.metrics
            ],
            "ledger": [(*record.key, channel, at) for record, channel in writes.ledger]
            if self.design == LEDGER
            else [],
            "pages": self.pages(writes, at) if self.design == PAGES else [],
            "outbox": [
                (event.event_type, event.key, orjson.dumps(event.payload()).decode(), at)
                for event in writes.outbox
            ],
        }

    @staticmethod
    def pages(writes: ChunkWrites, at: Any) -> list[tuple[Any, ...]]:
        """The chunk's AUDIT events as the log writes them: a page per course."""
        by_course: dict[tuple[str, str | None], list[list[str]]] = {}
        for record, channel in writes.ledger:
            e = record.enrolment
            by_course.setdefault((e.course_id, channel), []).append(
                [e.user_id, e.batch_id, record.object_type.value, record.object_id, record.action.value]
            )
        return [
            (course, channel, at, len(entries), orjson.dumps(entries))
            for (course, channel), entries in by_course.items()
        ]

    def write(
        self, engine: sa.Engine, parameters: Mapping[str, list[tuple[Any, ...]]], now: datetime
    ) -> dict[str, float]:
        """The job's transaction and the relay's marks for one chunk; return the seconds each part took
        (``commit`` is connecting, BEGIN and COMMIT of the job's transaction)."""
        spent: dict[str, float] = {}
        started = time.perf_counter()
        with engine.begin() as connection:
            for sql, kind in (
                (self.update_enrolment, "enrolments"),
                (self.upsert_metric, "metrics"),
                (self.insert_ledger, "ledger"),
                (self.insert_page, "pages"),
                (self.insert_outbox, "outbox"),
            ):
                if parameters[kind]:
                    before = time.perf_counter()
                    connection.exec_driver_sql(sql, parameters[kind])
                    spent[kind] = time.perf_counter() - before
        committed = time.perf_counter()
        spent["commit"] = committed - started - sum(spent.values())
        relayed = len(parameters["outbox"])
        if relayed:
            with engine.begin() as connection:
                ids = [row[0] for row in connection.exec_driver_sql(self.pending, (relayed,))]
                at = self.stamp(now)
                connection.exec_driver_sql(self.mark_relayed, [(at, message_id) for message_id in ids])
        audits = len(parameters["ledger"])
        if audits:
            with engine.begin() as connection:
                rows = connection.exec_driver_sql(self.ledger_page, (audits,)).all()
                connection.exec_driver_sql(self.move_cursor, (rows[-1][0], self.stamp(now)))
        if parameters["pages"]:
            with engine.begin() as connection:
                position = connection.exec_driver_sql(self.cursor).scalar_one()
                pages = connection.exec_driver_sql(self.pages_after, (position >> ENTRY_BITS,)).all()
                last = (pages[-1][0] << ENTRY_BITS) + pages[-1][4] - 1
                connection.exec_driver_sql(self.move_cursor, (last, self.stamp(now)))
        spent["relay"] = time.perf_counter() - committed
        return spent


def run_raw_limit(
    app: App, scenario: Scenario, chunk: int, log: Callable[[str], None], design: str = PAGES
) -> RawLimit:
    """Write the rows the job writes for the whole stream (AUDIT events as ``design`` keeps them),
    chunk by chunk, with no logic in between."""
    writer = RawWriter(app.engine.dialect.name, design)
    replay = Replay(scenario.views)
    by_kind = {"enrolments": 0, "metrics": 0, "ledger": 0, "pages": 0, "outbox": 0, "relay": 0}
    seconds_by_kind = dict.fromkeys([*by_kind, "commit"], 0.0)
    events = 0
    gc.collect()
    for writes in replay.run(read_events(scenario.events_path), chunk):
        now = datetime.now(UTC)
        parameters = writer.parameters(writes, now)
        for kind, spent in writer.write(app.engine, parameters, now).items():
            seconds_by_kind[kind] += spent
        for kind in ("enrolments", "metrics", "ledger", "pages", "outbox"):
            by_kind[kind] += len(parameters[kind])
        by_kind["relay"] += len(parameters["outbox"]) + (
            1 if parameters["ledger"] or parameters["pages"] else 0
        )
        events += writes.events
        if events % 200_000 < chunk:
            log(f"{app.engine.dialect.name} raw limit ({design}): {events:,} events")
    return RawLimit(
        events, sum(by_kind.values()), by_kind, sum(seconds_by_kind.values()), seconds_by_kind, replay
    )


# --------------------------------------------------------------------------------------------------
# 3. Naive: one transaction per event
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Naive:
    """The naive implementation's run on a prefix of the events."""

    events: int
    process_seconds: float
    relay_seconds: float
    emitted: int
    relayed: int
    check: StoreCheck
    expected: Replay

    @property
    def seconds(self) -> float:
        """Processing and relay."""
        return self.process_seconds + self.relay_seconds

    @property
    def rate(self) -> float:
        """Events per second, the relay included."""
        return self.events / self.seconds

    @property
    def process_rate(self) -> float:
        """Events per second without the relay."""
        return self.events / self.process_seconds


class NaiveAggregator:
    """The aggregator as the seed describes it: each event on its own, in its own transaction."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.cache = app.cache
        self.channels: dict[str, str | None] = {}
        e = user_enrolments.c
        self.select_enrolment = sa.select(user_enrolments).where(
            e.userid == sa.bindparam("u"), e.courseid == sa.bindparam("c"), e.batchid == sa.bindparam("b")
        )
        self.update_enrolment = (
            user_enrolments.update()
            .where(
                e.userid == sa.bindparam("u"), e.courseid == sa.bindparam("c"), e.batchid == sa.bindparam("b")
            )
            .values(
                contentstatus=sa.bindparam("v_contentstatus", type_=e.contentstatus.type),
                status=sa.bindparam("v_status"),
                progress=sa.bindparam("v_progress"),
                completionpercentage=sa.bindparam("v_percentage"),
                completedon=sa.bindparam("v_completedon", type_=e.completedon.type),
                lastreadcontentid=sa.bindparam("v_last"),
                lastreadcontentstatus=sa.bindparam("v_last_status"),
                datetime=sa.bindparam("v_updated", type_=e.datetime.type),
            )
        )
        insert = postgresql.insert if app.engine.dialect.name == "postgresql" else sqlite.insert
        metric = insert(user_activity_agg)
        self.upsert_metric_statement = metric.on_conflict_do_update(
            index_elements=["activity_type", "activity_id", "user_id", "context_id"],
            set_={"agg": metric.excluded.agg, "agg_last_updated": metric.excluded.agg_last_updated},
        )
        self.insert_ledger = audit_ledger.insert()
        self.insert_outbox = outbox.insert()
        a = audit_ledger.c
        self.find_audit = sa.select(a.id).where(
            a.userid == sa.bindparam("u"),
            a.courseid == sa.bindparam("c"),
            a.batchid == sa.bindparam("b"),
            a.object_type == sa.bindparam("t"),
            a.object_id == sa.bindparam("o"),
            a.action == sa.bindparam("x"),
        )
        self.emitted = 0

    def channel(self, connection: sa.Connection, course_id: str) -> str | None:
        """The course's channel, read once per course (a generous naive)."""
        if course_id not in self.channels:
            self.channels[course_id] = connection.execute(
                sa.select(content_hierarchy.c.channel).where(content_hierarchy.c.identifier == course_id)
            ).scalar_one_or_none()
        return self.channels[course_id]

    def handle(self, connection: sa.Connection, line: str) -> bool:
        """Process one event in one transaction; False where the enrolment does not exist."""
        edata = orjson.loads(line)["edata"]
        user, course, batch = edata["userId"], edata["courseId"], edata["batchId"]
        now = datetime.now(UTC)
        with connection.begin():
            row = connection.execute(
                self.select_enrolment, {"u": user, "c": course, "b": batch}
            ).one_or_none()
            if row is None:
                return False
            leaves = members_of(self.cache.get(leaf_nodes_key(course, course)))
            optional = members_of(self.cache.get(optional_nodes_key(course, course)))
            merged = dict(row.contentstatus)
            for item in edata["contents"]:
                if item["status"] > merged.get(item["contentId"], -1):
                    merged[item["contentId"]] = item["status"]
            completed = {c for c, s in merged.items() if s == COMPLETED}
            started = {c for c, s in merged.items() if s >= IN_PROGRESS}
            required = (leaves - optional) or leaves
            done = len(completed & required)
            was_complete = row.status == int(EnrolmentStatus.COMPLETED)
            if was_complete or (required and done == len(required)):
                status = int(EnrolmentStatus.COMPLETED)
            elif started & leaves:
                status = int(EnrolmentStatus.IN_PROGRESS)
            else:
                status = row.status
            percent = 100 if was_complete else percentage(done, len(required))
            completed_on = row.completedon or (now if status == int(EnrolmentStatus.COMPLETED) else None)
            last = edata["contents"][-1]["contentId"]
            connection.execute(
                self.update_enrolment,
                {
                    "u": user,
                    "c": course,
                    "b": batch,
                    "v_contentstatus": merged,
                    "v_status": status,
                    "v_progress": done,
                    "v_percentage": percent,
                    "v_completedon": completed_on,
                    "v_last": last,
                    "v_last_status": merged[last],
                    "v_updated": now,
                },
            )
            context = f"cb:{batch}"
            stamp = int(now.timestamp() * 1000)
            key = EnrolmentKey(user, course, batch)
            audits: list[AuditRecord] = []
            if started & leaves:
                audits.append(AuditRecord(key, AuditObject.COURSE, course, AuditAction.ENROL))
            if status == int(EnrolmentStatus.COMPLETED):
                audits.append(AuditRecord(key, AuditObject.COURSE, course, AuditAction.COMPLETE))
            self.upsert_metric(
                connection, ("Course", course, user, context), done, len(required), percent, stamp
            )
            touched = [c for c in dict.fromkeys(i["contentId"] for i in edata["contents"]) if c in leaves]
            units: dict[str, None] = {}
            for content_id in touched:
                for unit in path_of(self.cache.get(ancestors_key(content_id, course))):
                    if unit != course:
                        units[unit] = None
            for unit in units:
                unit_leaves = members_of(self.cache.get(leaf_nodes_key(unit, course)))
                unit_optional = members_of(self.cache.get(optional_nodes_key(unit, course)))
                unit_required = (unit_leaves - unit_optional) or unit_leaves
                unit_done = len(completed & unit_required)
                self.upsert_metric(
                    connection,
                    ("CourseUnit", unit, user, context),
                    unit_done,
                    len(unit_required),
                    percentage(unit_done, len(unit_required)),
                    stamp,
                )
                if unit_done >= 1:
                    audits.append(AuditRecord(key, AuditObject.COURSE_UNIT, unit, AuditAction.START))
                if unit_required and unit_done == len(unit_required):
                    audits.append(AuditRecord(key, AuditObject.COURSE_UNIT, unit, AuditAction.COMPLETE))
            for content_id in touched:
                if merged[content_id] >= IN_PROGRESS:
                    audits.append(AuditRecord(key, AuditObject.CONTENT, content_id, AuditAction.START))
                if merged[content_id] == COMPLETED:
                    audits.append(AuditRecord(key, AuditObject.CONTENT, content_id, AuditAction.COMPLETE))
            channel = self.channel(connection, course)
            for record in audits:
                self.emit_once(connection, record, channel, now, completed_on)
        return True

    def upsert_metric(
        self,
        connection: sa.Connection,
        key: tuple[str, str, str, str],
        done: int,
        total: int,
        progress: int,
        stamp: int,
    ) -> None:
        """One ``user_activity_agg`` upsert."""
        agg = {"completedCount": done, "leafNodesCount": total, "progress": progress}
        connection.execute(
            self.upsert_metric_statement,
            {
                "activity_type": key[0],
                "activity_id": key[1],
                "user_id": key[2],
                "context_id": key[3],
                "agg": agg,
                "agg_last_updated": dict.fromkeys(agg, stamp),
            },
        )

    def emit_once(
        self,
        connection: sa.Connection,
        record: AuditRecord,
        channel: str | None,
        now: datetime,
        completed_on: datetime | None,
    ) -> None:
        """Check-then-insert: look the AUDIT event up in the ledger; if absent, insert it (the ledger is
        the AUDIT events' outbox) and, for a course completion, the certificate request's outbox row."""
        user, course, batch, kind, object_id, action = record.key
        found = connection.execute(
            self.find_audit, {"u": user, "c": course, "b": batch, "t": kind, "o": object_id, "x": action}
        ).first()
        if found is not None:
            return
        connection.execute(
            self.insert_ledger,
            {
                "userid": user,
                "courseid": course,
                "batchid": batch,
                "object_type": kind,
                "object_id": object_id,
                "action": action,
                "channel": channel,
                "emitted_at": now,
            },
        )
        messages: list[Event] = []
        if record.object_type is AuditObject.COURSE and record.action is AuditAction.COMPLETE:
            messages.append(
                CertificateRequested(
                    user_id=user,
                    course_id=course,
                    batch_id=batch,
                    completed_on=(completed_on or now).isoformat(),
                    occurred_at=now,
                )
            )
        for message in messages:
            connection.execute(
                self.insert_outbox,
                {
                    "event_type": message.event_type,
                    "key": message.key,
                    "payload": message.payload(),
                    "created_at": now,
                },
            )
        self.emitted += 1


def run_naive(app: App, scenario: Scenario, limit: int, log: Callable[[str], None]) -> Naive:
    """The naive aggregator on the first ``limit`` events, then ``app.relay()``; checked against the
    offline replay of the same events."""
    naive = NaiveAggregator(app)
    lines = list(read_events(scenario.events_path, limit))
    gc.collect()
    started = time.perf_counter()
    with app.engine.connect() as connection:
        for number, line in enumerate(lines, start=1):
            naive.handle(connection, line)
            if number % 5000 == 0:
                log(f"{app.engine.dialect.name} naive: {number:,} events")
    processed = time.perf_counter()
    relayed = app.relay()
    relay_seconds = time.perf_counter() - processed
    return Naive(
        events=len(lines),
        process_seconds=processed - started,
        relay_seconds=relay_seconds,
        emitted=naive.emitted,
        relayed=relayed,
        check=check_stores(app.engine),
        expected=expected_outcome(scenario, limit),
    )


# --------------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------------

PROFILED = (
    ("ingest.py", "ingest", "ingest (whole, relay excluded)"),
    ("ingest.py", "parse_line", "  parse_line (orjson.loads)"),
    ("ingest.py", "process", "  Router.process"),
    ("course_metrics.py", "process", "    CourseMetricsJob.process"),
    ("job_requests.py", "read_enrolment_update", "      read_enrolment_update"),
    ("course_metrics.py", "load", "      CourseViews.load (relation cache reads)"),
    ("course_metrics.py", "_apply", "      CourseMetricsJob._apply"),
    ("enrolments.py", "get_many", "        SqlEnrolmentStore.get_many (read)"),
    ("aggregator.py", "plan_batch", "        plan_batch (pure domain)"),
    ("progress.py", "aggregate", "          aggregate"),
    ("progress.py", "_transitions", "            _transitions (AUDIT events: conditions against the state)"),
    ("course_metrics.py", "write_aggregations", "        write_aggregations"),
    ("enrolments.py", "save_progress", "          SqlEnrolmentStore.save_progress"),
    ("enrolments.py", "upsert", "          SqlActivityStore.upsert"),
    ("audit.py", "append", "          SqlAuditLog.append"),
    ("ports.py", "commit", "      UnitOfWork.commit (outbox insert + COMMIT) [all]"),
    ("store.py", "add", "        Sql{Outbox,FailedEventStore,CounterStore}.add [all]"),
    ("events.py", "payload", "          Event.payload [all]"),
    ("ingest.py", "keep_rejected", "  keep_rejected (counters transaction)"),
    ("messagebus.py", "relay_outbox", "relay_outbox (app.relay)"),
    ("store.py", "pending", "  SqlOutbox.pending"),
    ("store.py", "mark_relayed", "  SqlOutbox.mark_relayed"),
    ("messagebus.py", "relay_audit_log", "relay_audit_log (app.relay)"),
    ("audit.py", "read_after", "  SqlAuditLog.read_after (the entries after the cursor)"),
    ("progress.py", "telemetry", "  AuditRecord.telemetry"),
    ("store.py", "__exit__", "SqlUnitOfWork.__exit__ (rollback, close) [all]"),
    ("store.py", "__enter__", "SqlUnitOfWork.__enter__ (connect, begin) [all]"),
    ("store.py", "_commit", "SqlUnitOfWork._commit (COMMIT + BEGIN) [all]"),
)


@dataclass(frozen=True, slots=True)
class Profile:
    """cProfile of an end-to-end run: total seconds, selected src functions, the top of tottime."""

    events: int
    seconds: float
    ingest_seconds: float
    relay_seconds: float
    selected: list[tuple[str, int, float]]
    top: list[tuple[str, int, float, float]]


def run_profile(app: App, scenario: Scenario, limit: int, log: Callable[[str], None]) -> Profile:
    """Profile ``ingest`` (chunk 1000) and ``app.relay()`` on the first ``limit`` events."""
    profiler = cProfile.Profile()
    gc.collect()
    started = time.perf_counter()
    profiler.enable()
    ingest(read_events(scenario.events_path, limit), "bench", app.router, app.uow_factory, chunk_size=1000)
    ingested = time.perf_counter()
    app.relay()
    profiler.disable()
    finished = time.perf_counter()
    log(f"{app.engine.dialect.name} profile: {limit:,} events in {finished - started:.1f} s")
    stats = pstats.Stats(profiler, stream=io.StringIO())
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = finished - started
    selected: list[tuple[str, int, float]] = []
    for filename, function, label in PROFILED:
        calls, cumulative = 0, 0.0
        for (path, _line, name), (_cc, nc, _tt, ct, _callers) in raw.items():
            if name == function and path.endswith(filename) and f"{os.sep}courseinfra{os.sep}" in path:
                calls += nc
                cumulative += ct
        if calls:
            selected.append((label, calls, cumulative))
    ranked = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:20]
    top = [
        (_short(path, line, name), nc, tt, ct) for (path, line, name), (_cc, nc, tt, ct, _callers) in ranked
    ]
    return Profile(limit, total, ingested - started, finished - ingested, selected, top)


def _short(path: str, line: int, name: str) -> str:
    """``package/module.py:line(name)`` from a profiler key."""
    if path == "~":
        return name
    parts = Path(path).parts
    for anchor in ("courseinfra", "sqlalchemy", "psycopg", "redis"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            return f"{'/'.join(parts[index:])}:{line}({name})"
    return f"{Path(path).name}:{line}({name})"


# --------------------------------------------------------------------------------------------------
# Per backend
# --------------------------------------------------------------------------------------------------


@dataclass
class BackendResult:
    """Everything measured on one backend."""

    name: str
    end_to_end: list[EndToEnd] = field(default_factory=list)
    raw: RawLimit | None = None
    raw_former: RawLimit | None = None
    naive: Naive | None = None
    seed_naive: SeedNaiveRun | None = None
    profile: Profile | None = None
    expected_audits: int | None = None
    problems: list[str] = field(default_factory=list)
    setup_seconds: float = 0.0
    wall_seconds: float = 0.0

    def best_rate(self) -> float:
        """The best end-to-end rate over the chunk sizes (0 when none ran)."""
        return max((run.rate for run in self.end_to_end), default=0.0)


def measure_backend(
    backend: Backend, scenario: Scenario, args: argparse.Namespace, log: Callable[[str], None]
) -> BackendResult:
    """Setup, then end to end for each chunk size, the raw limit, the naive run and the profile, each
    from the initial state."""
    started = time.perf_counter()
    result = BackendResult(backend.name)
    log(f"{backend.name}: setup ({len(scenario.courses)} courses, {len(scenario.enrolments):,} enrolments)")
    app = setup_app(backend, scenario)
    result.setup_seconds = time.perf_counter() - started
    log(f"{backend.name}: setup done in {result.setup_seconds:.1f} s")
    try:
        for chunk, workers in [] if args.profile_only else end_to_end_runs(args):
            run = run_end_to_end(app, scenario, chunk, log, workers=workers)
            result.end_to_end.append(run)
            log(
                f"{backend.name}: end to end, {run.label}: {run.rate:,.0f} events/s "
                f"(ingest {run.ingest_seconds:.1f} s, relay {run.relay_seconds:.1f} s, "
                f"{run.check.ledger_rows:,} AUDIT)"
            )
            result.problems += [f"end to end {run.label}: {p}" for p in run.check.problems()]
            if run.rejected:
                result.problems.append(f"end to end {run.label}: {run.rejected} events rejected")
            if run.audit_counted != run.check.ledger_rows:
                result.problems.append(
                    f"end to end {run.label}: job counted {run.audit_counted} AUDIT events, "
                    f"ledger holds {run.check.ledger_rows}"
                )
            reset_progress(app)
        if not args.no_raw and not args.profile_only:
            result.raw = run_raw_limit(app, scenario, RAW_CHUNK, log)
            replay = result.raw.expected
            result.expected_audits = len(replay.ledger)
            log(
                f"{backend.name}: raw limit {result.raw.rows_per_second:,.0f} rows/s = "
                f"{result.raw.events_per_second:,.0f} events/s"
            )
            for run in result.end_to_end:
                if run.check.ledger_rows != len(replay.ledger):
                    result.problems.append(
                        f"end to end {run.label}: {run.check.ledger_rows} AUDIT events, the offline "
                        f"replay predicts {len(replay.ledger)}"
                    )
                if (run.check.completed_enrolments, run.check.progress_sum) != (
                    replay.completed,
                    replay.progress_sum,
                ):
                    result.problems.append(
                        f"end to end {run.label}: {run.check.completed_enrolments} completed, progress "
                        f"sum {run.check.progress_sum}; replay: {replay.completed}, {replay.progress_sum}"
                    )
                if (run.chunk, run.workers) == (
                    RAW_CHUNK,
                    0,
                ) and run.enrolments_updated != replay.enrolment_updates:
                    result.problems.append(
                        f"end to end {run.label}: {run.enrolments_updated} enrolment updates, "
                        f"replay: {replay.enrolment_updates}"
                    )
            reset_progress(app)
            result.raw_former = run_raw_limit(app, scenario, RAW_CHUNK, log, design=LEDGER)
            log(
                f"{backend.name}: raw limit of the former rows {result.raw_former.rows_per_second:,.0f} "
                f"rows/s = {result.raw_former.events_per_second:,.0f} events/s"
            )
            reset_progress(app)
        if args.naive_events and not args.profile_only:
            naive = run_naive(app, scenario, args.naive_events, log)
            result.naive = naive
            log(f"{backend.name}: naive {naive.rate:,.0f} events/s ({naive.process_rate:,.0f} without relay)")
            expected = naive.expected
            result.problems += [f"naive: {p}" for p in naive.check.problems()]
            if (naive.check.ledger_rows, naive.check.completed_enrolments, naive.check.progress_sum) != (
                len(expected.ledger),
                expected.completed,
                expected.progress_sum,
            ):
                result.problems.append(
                    f"naive: ledger {naive.check.ledger_rows}, completed {naive.check.completed_enrolments}, "
                    f"progress sum {naive.check.progress_sum}; the replay of the same events gives "
                    f"{len(expected.ledger)}, {expected.completed}, {expected.progress_sum}"
                )
            reset_progress(app)
            seed = run_seed_naive(
                app.engine,
                backend.settings.home,
                scenario.views,
                scenario.enrolments,
                list(read_events(scenario.events_path, args.naive_events)),
            )
            result.seed_naive = seed
            log(f"{backend.name}: naive with the seed's rows only, plain driver: {seed.rate:,.0f} events/s")
            if (seed.emitted, seed.completed, seed.progress_sum) != (
                len(expected.ledger),
                expected.completed,
                expected.progress_sum,
            ):
                result.problems.append(
                    f"seed naive: {seed.emitted} AUDIT, {seed.completed} completed, progress sum "
                    f"{seed.progress_sum}; the replay gives {len(expected.ledger)}, {expected.completed}, "
                    f"{expected.progress_sum}"
                )
        if args.profile or args.profile_only:
            result.profile = run_profile(app, scenario, min(args.profile_events, scenario.events), log)
    finally:
        app.close()
        backend.cleanup(args.keep)
        result.wall_seconds = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


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


def rate(value: float | None) -> str:
    """Events (or rows) per second, rounded, or the not-run mark."""
    return NOT_RUN if value is None or math.isnan(value) else f"{value:,.0f}"


def backend_label(name: str) -> str:
    """The backend as the report names it."""
    return {"embedded": "embedded (SQLite + SQLite cache)", "postgres": "PostgreSQL + Redis"}.get(name, name)


def end_to_end_runs(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(chunk, workers) of each end-to-end run: every chunk size in this process (workers 0), then the
    largest with each ``--workers`` count."""
    runs = [(chunk, 0) for chunk in args.chunks]
    return runs + [(max(args.chunks), workers) for workers in args.workers]


def main_table(results: Sequence[BackendResult], runs: Sequence[tuple[int, int]], markdown: bool) -> str:
    """The table the brief asks for."""
    headers = [
        "backend",
        "events",
        *(
            f"end-to-end events/s (chunk {chunk}" + (f", {workers} workers + relay)" if workers else ")")
            for chunk, workers in runs
        ),
        "raw store limit (events/s equivalent)",
        "job / raw limit",
        "raw limit, former rows (events/s)",
        "naive events/s",
        "speed-up vs naive",
        "naive, seed's rows only, plain driver (events/s)",
        "speed-up vs it",
        "AUDIT events emitted",
        "wall time",
    ]
    rows = []
    for result in results:
        by_run = {(run.chunk, run.workers): run for run in result.end_to_end}
        events = result.end_to_end[0].events if result.end_to_end else 0
        naive = result.naive
        best = result.best_rate()
        audits = {run.check.ledger_rows for run in result.end_to_end}
        rows.append(
            [
                backend_label(result.name),
                f"{events:,}",
                *(rate(by_run[key].rate) if key in by_run else NOT_RUN for key in runs),
                NOT_RUN
                if result.raw is None
                else f"{rate(result.raw.events_per_second)} ({rate(result.raw.rows_per_second)} rows/s)",
                NOT_RUN
                if result.raw is None or not best
                else f"{100 * best / result.raw.events_per_second:.0f}%",
                NOT_RUN
                if result.raw_former is None
                else f"{rate(result.raw_former.events_per_second)} ({rate(result.raw_former.rows_per_second)} rows/s)",
                NOT_RUN if naive is None else f"{rate(naive.rate)} ({naive.events:,} events)",
                NOT_RUN if naive is None or not best else f"{best / naive.rate:.1f}x",
                NOT_RUN if result.seed_naive is None else rate(result.seed_naive.rate),
                NOT_RUN if result.seed_naive is None or not best else f"{best / result.seed_naive.rate:.1f}x",
                "/".join(f"{count:,}" for count in sorted(audits)) or NOT_RUN,
                f"{result.wall_seconds:.0f} s",
            ]
        )
    return render_table(headers, rows, markdown)


def breakdown_table(results: Sequence[BackendResult], markdown: bool) -> str:
    """Where the end-to-end and naive time goes: the job (ingest) and the relay, apart."""
    headers = [
        "backend",
        "run",
        "events",
        "ingest / process (s)",
        "relay (s)",
        "messages relayed",
        "events/s, whole",
        "events/s, without relay",
        "relay messages/s",
    ]
    rows = []
    for result in results:
        label = backend_label(result.name)
        for run in result.end_to_end:
            rows.append(
                [
                    label,
                    f"end to end, {run.label}",
                    f"{run.events:,}",
                    f"{run.ingest_seconds:.1f}",
                    f"{run.relay_seconds:.1f}",
                    f"{run.relayed:,}",
                    rate(run.rate),
                    rate(run.events / run.ingest_seconds),
                    rate(run.relayed / run.relay_seconds if run.relay_seconds else None),
                ]
            )
        if result.naive is not None:
            naive = result.naive
            rows.append(
                [
                    label,
                    "naive (one transaction per event)",
                    f"{naive.events:,}",
                    f"{naive.process_seconds:.1f}",
                    f"{naive.relay_seconds:.1f}",
                    f"{naive.relayed:,}",
                    rate(naive.rate),
                    rate(naive.process_rate),
                    rate(naive.relayed / naive.relay_seconds if naive.relay_seconds else None),
                ]
            )
        for raw, design in ((result.raw, "AUDIT pages"), (result.raw_former, "former AUDIT ledger")):
            if raw is None:
                continue
            kinds = ", ".join(f"{kind} {count:,}" for kind, count in raw.rows_by_kind.items() if count)
            rows.append(
                [
                    label,
                    f"raw store limit, {design}, chunk {RAW_CHUNK} ({kinds})",
                    f"{raw.events:,}",
                    f"{raw.seconds:.1f}",
                    "(in)",
                    f"{raw.rows_by_kind['relay']:,}",
                    rate(raw.events_per_second),
                    NOT_RUN,
                    NOT_RUN,
                ]
            )
    return render_table(headers, rows, markdown)


def profile_report(result: BackendResult, markdown: bool) -> list[str]:
    """The profile of one backend as two tables."""
    profile = result.profile
    if profile is None:
        return []
    out = [
        f"cProfile, {backend_label(result.name)}: {profile.events:,} events, chunk 1000, "
        f"{profile.seconds:.1f} s under the profiler (ingest {profile.ingest_seconds:.1f} s, "
        f"relay {profile.relay_seconds:.1f} s); cumulative time of functions of src/:",
        "",
    ]
    rows = [
        [label, f"{calls:,}", f"{seconds:.2f}", f"{100 * seconds / profile.seconds:.1f}%"]
        for label, calls, seconds in profile.selected
    ]
    out.append(render_table(["function", "calls", "cumulative (s)", "share"], rows, markdown))
    out += ["", "Top 20 by own time (tottime):", ""]
    rows = [
        [name, f"{calls:,}", f"{own:.2f}", f"{100 * own / profile.seconds:.1f}%", f"{cumulative:.2f}"]
        for name, calls, own, cumulative in profile.top
    ]
    out.append(render_table(["function", "calls", "own (s)", "share", "cumulative (s)"], rows, markdown))
    out.append("")
    return out


def report(
    results: Sequence[BackendResult], scenario: Scenario, args: argparse.Namespace, wall: float
) -> str:
    """The whole report: environment, scenario, the main table, the breakdown, checks, aims, profiles."""
    markdown: bool = args.markdown
    heading = "## " if markdown else ""
    out = [f"{heading}Course metrics aggregator benchmark", ""]
    leaves = [len(course.leaves) for course in scenario.courses]
    units = [course.units for course in scenario.courses]
    now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
    out.append(
        f"- date: {now}; Python {platform.python_version()}, SQLAlchemy {sa.__version__}, "
        f"SQLite {sqlite3.sqlite_version}, redis-py {redis.__version__}; {platform.platform()}\n"
        f"- code under test: {args.revision}\n"
        f"- CPU count: {os.cpu_count()}, load average at the end: "
        f"{', '.join(f'{load:.2f}' for load in os.getloadavg())}\n"
        f"- scenario (seed {args.seed}): {len(scenario.courses)} courses of {min(leaves)} to {max(leaves)} "
        f"leaves ({sum(leaves):,} in all, {min(units)} to {max(units)} units in 2 levels, "
        f"{sum(c.optional for c in scenario.courses)} optional); {args.learners:,} learners, "
        f"{len(scenario.enrolments):,} enrolments; {scenario.events:,} events "
        f"({scenario.contents_reported:,} content updates, "
        f"{scenario.events_path.stat().st_size / 1e6:.0f} MB of JSON lines)\n"
        "- end to end = ingest(open(file), chunk_size=C) + app.relay(), from the same initial state each "
        "time (with W workers: W processes, as `courseinfra ingest --workers W`, each taking the events of "
        "its share of the enrolments, while the measuring process relays beside them); raw limit and naive from that state too; setup, generation and "
        "resets are not measured"
    )
    out += ["", main_table(results, end_to_end_runs(args), markdown), ""]
    out += ["Breakdown (the job and the relay apart):", "", breakdown_table(results, markdown), ""]
    for result, raw in [(r, raw) for r in results for raw in (r.raw, r.raw_former)]:
        if raw is None:
            continue
        parts = ", ".join(
            f"{kind} {seconds:.2f} s"
            + (
                f" ({raw.rows_by_kind[kind] / seconds:,.0f} rows/s)"
                if kind in raw.rows_by_kind and seconds
                else ""
            )
            for kind, seconds in raw.seconds_by_kind.items()
        )
        design = "AUDIT pages" if raw is result.raw else "former AUDIT ledger"
        out.append(f"- raw store limit ({design}), {backend_label(result.name)}, time by kind: {parts}")
    out.append("")
    out.append("Checks after each run:")
    out.append("")
    for result in results:
        label = backend_label(result.name)
        predicted = NOT_RUN if result.expected_audits is None else f"{result.expected_audits:,}"
        for run in result.end_to_end:
            c = run.check
            out.append(
                f"- {label}, {run.label}: {c.ledger_rows:,} ledger rows (job counted "
                f"{run.audit_counted:,}; offline replay predicts "
                f"{predicted}), "
                f"{c.duplicate_ledger_keys} duplicate keys, completionpercentage {c.min_percentage}..{c.max_percentage} "
                f"({c.out_of_range_percentages} outside 0..100), {c.started_enrolments:,} enrolments started, "
                f"{c.completed_enrolments:,} completed, {c.certificate_requests:,} certificate requests, "
                f"{c.activity_rows:,} activity rows, {run.enrolments_updated:,} enrolment updates, "
                f"{run.rejected} rejected, {c.pending_outbox} outbox rows pending"
            )
        if result.naive is not None:
            c, expected = result.naive.check, result.naive.expected
            out.append(
                f"- {label}, naive on {result.naive.events:,} events: {c.ledger_rows:,} ledger rows "
                f"(replay predicts {len(expected.ledger):,}), {c.completed_enrolments:,} completed "
                f"(replay {expected.completed:,}), progress sum {c.progress_sum:,} (replay {expected.progress_sum:,})"
            )
        out.append(f"- {label}: {'; '.join(result.problems) if result.problems else 'every check holds'}")
    out += ["", "Aims:", ""]
    for result in results:
        if not result.end_to_end:
            continue
        aim = AIM_EVENTS_PER_SECOND.get(result.name)
        best = result.best_rate()
        if aim is not None:
            out.append(
                f"- {backend_label(result.name)}: ≥ {aim:,} events/s end to end: best {best:,.0f}, "
                f"{'met' if best >= aim else 'MISSED'}"
            )
        if result.raw is not None and best:
            share = best / result.raw.events_per_second
            out.append(
                f"- {backend_label(result.name)}: ≥ 50% of the store's raw limit for the rows the job writes: "
                f"{100 * share:.0f}%, {'met' if share >= 0.5 else 'MISSED'}"
                + (
                    ""
                    if result.raw_former is None
                    else f" (raw limit {result.raw.events_per_second:,.0f} events/s with AUDIT pages, "
                    f"{result.raw_former.events_per_second:,.0f} with the former ledger rows)"
                )
            )
        if result.naive is not None and best:
            speedup = best / result.naive.rate
            out.append(
                f"- {backend_label(result.name)}: ≥ {AIM_SPEEDUP:.0f}x the naive one: {speedup:.1f}x, "
                f"{'met' if speedup >= AIM_SPEEDUP else 'MISSED'} (without the relay on either side: "
                f"{max(r.events / r.ingest_seconds for r in result.end_to_end) / result.naive.process_rate:.1f}x)"
            )
        if result.seed_naive is not None and best:
            speedup = best / result.seed_naive.rate
            out.append(
                f"- {backend_label(result.name)}: ≥ {AIM_SPEEDUP:.0f}x the naive one with the seed's rows only "
                f"(issue 11): {speedup:.1f}x, {'met' if speedup >= AIM_SPEEDUP else 'MISSED'}"
            )
    out.append("")
    for result in results:
        out += profile_report(result, markdown)
    out.append(f"Wall time of the whole run: {wall:.0f} s")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def _count(text: str) -> int:
    """A count of 0 or more (underscores allowed)."""
    value = int(text.replace("_", ""))
    if value < 0:
        raise argparse.ArgumentTypeError("expected a count of 0 or more")
    return value


def _names(text: str) -> list[str]:
    """Comma-separated backend names, each one of :data:`BACKENDS`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"backends are {', '.join(BACKENDS)}")
    return names


def _chunks(text: str) -> list[int]:
    """Comma-separated chunk sizes of at least 1."""
    try:
        chunks = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not chunks or min(chunks) < 1:
        raise argparse.ArgumentTypeError("give comma-separated chunk sizes of at least 1")
    return chunks


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark of the course metrics aggregator, end to end, against the raw store and "
        "a naive one-transaction-per-event implementation.",
        epilog=f"Scratch stores: --database-url's database is dropped and created; --redis-url's database "
        f"is FLUSHDB'd. Smoke test: --events 20000 --learners 2000. Defaults: {DEFAULT_DATABASE_URL}, "
        f"{DEFAULT_REDIS_URL}.",
    )
    parser.add_argument("--events", type=_count, default=DEFAULT_EVENTS)
    parser.add_argument("--learners", type=_count, default=DEFAULT_LEARNERS)
    parser.add_argument("--courses", type=_count, default=DEFAULT_COURSES)
    parser.add_argument("--backends", type=_names, default=list(BACKENDS), help="embedded,postgres")
    parser.add_argument("--chunks", type=_chunks, default=list(DEFAULT_CHUNKS), help="default 1000,5000")
    parser.add_argument(
        "--workers",
        type=_chunks,
        default=list(DEFAULT_WORKERS),
        help="worker processes of the extra runs at the largest chunk (ingest --workers), default 2",
    )
    parser.add_argument(
        "--naive-events",
        type=_count,
        default=None,
        help=f"prefix of the events the naive one runs on (default {DEFAULT_NAIVE_EVENTS:,}, or a tenth of "
        "--events where that is smaller, at least 1,000); 0: skip",
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw store limit")
    parser.add_argument("--profile", action="store_true", help="cProfile the end-to-end run per backend")
    parser.add_argument("--profile-events", type=_count, default=DEFAULT_PROFILE_EVENTS)
    parser.add_argument(
        "--profile-only", action="store_true", help="only the setup and the cProfile run of each backend"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database afterwards")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.events < 1 or args.learners < 1 or args.courses < 1:
        parser.error("--events, --learners and --courses must be at least 1")
    if args.naive_events is None:
        args.naive_events = min(DEFAULT_NAIVE_EVENTS, max(1000, args.events // 10))
    args.naive_events = min(args.naive_events, args.events)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the scenario, measure every backend, print the report."""
    args = parse_args(argv)
    args.revision = source_revision()  # at the start: the modules are imported already
    started = time.perf_counter()

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="courseinfra-metrics-bench-"))
    try:
        log(f"generating {args.courses} courses, {args.learners:,} learners, {args.events:,} events")
        scenario = generate_scenario(args.courses, args.learners, args.events, args.seed, workdir)
        log(f"generated {len(scenario.enrolments):,} enrolments, {scenario.events:,} events")
        results = [
            measure_backend(backend, scenario, args, log)
            for backend in make_backends(args.backends, args, workdir / "homes")
        ]
        print(report(results, scenario, args, time.perf_counter() - started))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
