"""Benchmark of the user-group membership engine: a group's criteria evaluated by the database and applied
as a difference, against the Python evaluation of the same tree user by user.

Run as ``.venv/bin/python bench/groups.py [--users 1000000] [--backends postgres] [--markdown]``.

Scenario (deterministic from ``--seed``; timestamps are relative to the run's start, because
``refresh_on_event`` evaluates at the real time):

- ``--users`` users (default 1,000,000 on PostgreSQL, 200,000 on the embedded SQLite), bulk-inserted
  into ``users`` (COPY on PostgreSQL, ``executemany`` in chunks of 10,000 on SQLite; not timed, the
  seeding time is printed): ~2% staff; ``last_login_at`` uniformly over the last 400 days, 10% never;
  a profile ``{"district": one of 30, "role": teacher/learner/admin}``;
- one course with one batch; ~30% of the users enrolled in it (``user_enrolments``: 95% active, 25%
  verified and otherwise audit, ``completionpercentage`` uniform in 0..100);
- then ``VACUUM (ANALYZE)`` on PostgreSQL (what autovacuum would do after such a load, done now so that it
  does not run during the measurements), ``ANALYZE`` on SQLite.

The group (scope ``instance``): an AND of a last login within 90 days and an OR of a district among 5
of the 30 and a progress below 30% in the batch.

Measured (``time.perf_counter`` around the service calls, each opening its own unit of work):

1. *full evaluation + difference applied*: ``create_group`` (the first refresh: every member joins), then
   ``update_group`` with the days changed from 90 to 60 (a second full refresh: only leaves), with the
   joins, leaves and members of each; every statement they issue is timed
   (``before/after_cursor_execute``) to show where the time goes;
2. *baseline*: the Python evaluation of the same trees over every user: every user's facts loaded
   (``--facts-loader select``: one streamed SELECT of the users and one of the enrolments, built into
   ``UserFacts`` as ``SqlGroupFacts`` builds them; ``pages``: ``SqlGroupFacts.load`` over every user id,
   2,000 ids a page), then ``registry.holds`` per user; load and evaluation timed apart; the users it
   selects are checked equal to the members the SQL refresh left, for both trees;
3. *one user after one event*: for ``--samples`` random users, their ``last_login_at`` or their
   progress changed directly (not timed), then ``refresh_group(group, uow, only_users=[user])`` timed
   (median, p95); beside it the Python reading of that one user's facts + ``MembershipRule.decide``
   (no write); then ``refresh_on_event`` with real ``UserLoggedIn`` and ``ProgressUpdated``
   ``OutboxMessage``\\ s for one user each (``--event-samples`` of each). The first ``WARMUP`` calls of each
   kind are not counted.

``--explain`` (PostgreSQL) replays the statements of both full refreshes and of the last one-user refresh
with ``EXPLAIN (ANALYZE, BUFFERS)`` in a transaction that is rolled back (the state before each refresh
restored inside it first), and prints the plans of the slow ones.

Smoke test: ``--users 20000``.

Scratch store: the PostgreSQL database of ``--database-url`` (``courseinfra_bench``) is dropped and
created again, and dropped at the end unless ``--keep``. Redis is not used.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from courseinfra.adapters.sql.groups import SqlGroupFacts
from courseinfra.adapters.sql.store import aware
from courseinfra.adapters.sql.tables import (
    course_batch,
    user_activity_agg,
    user_enrolments,
    user_group_members,
    users,
)
from courseinfra.adapters.sql.users import user_from_row
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.criteria import (
    EnrolmentFacts,
    EvaluationContext,
    MembershipRule,
    Node,
    Scope,
    UserFacts,
)
from courseinfra.domain.events import ProgressUpdated, UserLoggedIn
from courseinfra.services import groups
from courseinfra.services.events.ports import OutboxMessage
from courseinfra.services.groups.ports import RefreshResult
from courseinfra.settings import load_settings
from scratch import drop_database, recreate_database, source_revision

DEFAULT_USERS = {"postgres": 1_000_000, "embedded": 200_000}
DEFAULT_SAMPLES = 200
DEFAULT_EVENT_SAMPLES = 100
DEFAULT_SEED = 20240611
DEFAULT_DATABASE_URL = "postgresql+psycopg://courseinfra:courseinfra@127.0.0.1:5432/courseinfra_bench"
BACKENDS = ("embedded", "postgres")
NOT_RUN = "—"
WARMUP = 3
SEED_CHUNK = 10_000
EXPLAIN_MIN_MS = 5.0
COMMIT = "COMMIT"

AIM_FULL_SECONDS = 3.0  # evaluation + difference, 1M users
AIM_SPEEDUP = 20.0
AIM_ONE_USER_MS = 5.0

STAFF_SHARE = 0.02
NEVER_LOGGED_IN_SHARE = 0.10
LOGIN_SPREAD_DAYS = 400
ENROLLED_SHARE = 0.30
ACTIVE_SHARE = 0.95
VERIFIED_SHARE = 0.25
DISTRICTS = tuple(f"district-{i:02d}" for i in range(1, 31))
GROUP_DISTRICTS = DISTRICTS[:5]
COURSE_ID = "do_2130000000000000000000001"
BATCH_ID = "0130000000000000000001"
GROUP_ID = "bench-active-learners"
FIRST_DAYS, SECOND_DAYS = 90, 60
PROGRESS_BELOW = 30


def criteria(days: int) -> dict[str, Any]:
    """The group's tree: logged in within ``days`` AND (one of 5 districts OR progress < 30%)."""
    return {
        "and": [
            {"type": "last_login", "operator": "within_days", "config": {"days": days}},
            {
                "or": [
                    {
                        "type": "profile_field",
                        "operator": "in",
                        "config": {"field": "district", "values": list(GROUP_DISTRICTS)},
                    },
                    {
                        "type": "course_progress",
                        "operator": "lt",
                        "config": {"batch_id": BATCH_ID, "value": PROGRESS_BELOW},
                    },
                ]
            },
        ]
    }


# --------------------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------------------


USER_COLUMNS = (
    "user_id",
    "username",
    "email",
    "name",
    "organisation",
    "last_login_at",
    "is_staff",
    "profile",
    "created_at",
    "updated_at",
)
ENROLMENT_COLUMNS = (
    "userid",
    "courseid",
    "batchid",
    "active",
    "addedby",
    "enrolleddate",
    "datetime",
    "contentstatus",
    "lastreadcontentid",
    "lastreadcontentstatus",
    "progress",
    "completionpercentage",
    "status",
    "completedon",
    "certificates",
    "mode",
)


@dataclass(slots=True)
class Population:
    """What was generated and stored: the user ids, the enrolled ones, and the counts the report prints."""

    user_ids: list[str]
    enrolled: list[str]
    staff: int = 0
    never_logged_in: int = 0
    active_enrolments: int = 0
    seconds: float = 0.0


def _uuid(rng: random.Random) -> str:
    """A deterministic UUID-shaped identifier (Sunbird user ids are UUIDs)."""
    text = f"{rng.getrandbits(128):032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def generate(
    n_users: int, seed: int, now: datetime
) -> tuple[Population, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The users' and the enrolments' rows (in :data:`USER_COLUMNS` / :data:`ENROLMENT_COLUMNS` order,
    profile and JSON columns as Python values)."""
    rng = random.Random(seed)
    spread = LOGIN_SPREAD_DAYS * 86_400 * 1_000_000
    population = Population([], [])
    user_rows: list[tuple[Any, ...]] = []
    enrolment_rows: list[tuple[Any, ...]] = []
    created = now - timedelta(days=LOGIN_SPREAD_DAYS + 30)
    for i in range(n_users):
        user_id = _uuid(rng)
        staff = rng.random() < STAFF_SHARE
        never = rng.random() < NEVER_LOGGED_IN_SHARE
        last_login = None if never else now - timedelta(microseconds=rng.randrange(spread))
        role = "admin" if staff and rng.random() < 0.5 else ("teacher" if rng.random() < 0.15 else "learner")
        profile = {"district": DISTRICTS[rng.randrange(len(DISTRICTS))], "role": role}
        user_rows.append(
            (
                user_id,
                f"user{i:08d}",
                f"user{i:08d}@example.org",
                f"User {i}",
                f"org-{rng.randrange(50):02d}",
                last_login,
                staff,
                profile,
                created,
                created,
            )
        )
        population.user_ids.append(user_id)
        population.staff += staff
        population.never_logged_in += never
        if rng.random() < ENROLLED_SHARE:
            active = rng.random() < ACTIVE_SHARE
            mode = "verified" if rng.random() < VERIFIED_SHARE else "audit"
            percentage = rng.randint(0, 100)
            enrolled_at = now - timedelta(seconds=rng.randrange(300 * 86_400))
            enrolment_rows.append(
                (
                    user_id,
                    COURSE_ID,
                    BATCH_ID,
                    active,
                    None,
                    enrolled_at,
                    enrolled_at,
                    {},
                    None,
                    None,
                    percentage,
                    percentage,
                    2 if percentage == 100 else (1 if percentage else 0),
                    None,
                    [],
                    mode,
                )
            )
            population.enrolled.append(user_id)
            population.active_enrolments += active
    return population, user_rows, enrolment_rows


def _json_columns(columns: Sequence[str]) -> list[int]:
    return [i for i, name in enumerate(columns) if name in ("profile", "contentstatus", "certificates")]


def _copy(cursor: Any, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY ``rows`` into ``table`` (JSON columns as text, which jsonb and json read)."""
    json_at = _json_columns(columns)
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            values = list(row)
            for i in json_at:
                values[i] = orjson.dumps(values[i]).decode()
            copy.write_row(values)


def seed(
    app: App, user_rows: list[tuple[Any, ...]], enrolment_rows: list[tuple[Any, ...]], now: datetime
) -> None:
    """Store the batch, the users and the enrolments; then VACUUM ANALYZE (PostgreSQL) or ANALYZE."""
    with app.engine.begin() as connection:
        connection.execute(
            course_batch.insert().values(
                batchid=BATCH_ID,
                courseid=COURSE_ID,
                name="Benchmark batch",
                enrollmenttype="open",
                status=1,
                createdfor=[],
                mentors=[],
                createddate=now - timedelta(days=365),
            )
        )
    if app.engine.dialect.name == "postgresql":
        raw = app.engine.raw_connection()
        try:
            with raw.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                _copy(cursor, "users", USER_COLUMNS, user_rows)
                _copy(cursor, "user_enrolments", ENROLMENT_COLUMNS, enrolment_rows)
            raw.commit()
        finally:
            raw.close()
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in ("users", "user_enrolments", "course_batch"):
                connection.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
        return
    with app.engine.begin() as connection:
        for table, columns, rows in (
            (users, USER_COLUMNS, user_rows),
            (user_enrolments, ENROLMENT_COLUMNS, enrolment_rows),
        ):
            for start in range(0, len(rows), SEED_CHUNK):
                connection.execute(
                    table.insert(),
                    [dict(zip(columns, row, strict=True)) for row in rows[start : start + SEED_CHUNK]],
                )
    with app.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()


# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------


def start_app(name: str, args: argparse.Namespace, home: Path) -> App:
    """A fresh store for the backend (the scratch database recreated, or a new SQLite file), bootstrapped
    (migrated); the relation cache is the embedded file in both cases, and unused."""
    folder = home / name
    folder.mkdir(parents=True, exist_ok=True)
    if name == "postgres":
        recreate_database(args.database_url)
        settings = load_settings(home=folder, database_url=args.database_url, redis_url=None)
    else:
        settings = load_settings(home=folder, database_url=None, redis_url=None)
    return bootstrap(settings)


def server_version(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            version = connection.exec_driver_sql("SHOW server_version").scalar_one()
            settings = ", ".join(
                f"{name} {connection.exec_driver_sql(f'SHOW {name}').scalar_one()}"
                for name in ("shared_buffers", "work_mem", "synchronous_commit")
            )
            return f"PostgreSQL {version} ({settings})"
        return f"SQLite {sqlite3.sqlite_version}"


# --------------------------------------------------------------------------------------------------
# Statement timing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    parameters: Any
    executemany: bool
    seconds: float
    rowcount: int


class StatementLog:
    """Times every statement the engine sends while :meth:`capture` is active."""

    def __init__(self, engine: sa.Engine) -> None:
        self.entries: list[Statement] | None = None
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)
        # COMMIT is not a cursor statement: the dialect's do_commit of this engine is timed instead.
        dialect = engine.dialect
        commit = dialect.do_commit

        def timed_commit(dbapi_connection: Any) -> None:
            started = time.perf_counter()
            commit(dbapi_connection)
            if self.entries is not None:
                self.entries.append(Statement(COMMIT, None, False, time.perf_counter() - started, -1))

        dialect.do_commit = timed_commit  # type: ignore[method-assign]

    def _before(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if self.entries is not None:
            conn.info["bench_started"] = time.perf_counter()

    def _after(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        started = conn.info.pop("bench_started", None)
        if self.entries is not None and started is not None:
            seconds = time.perf_counter() - started
            self.entries.append(Statement(statement, parameters, many, seconds, cursor.rowcount))

    @contextmanager
    def capture(self) -> Iterator[list[Statement]]:
        entries: list[Statement] = []
        self.entries = entries
        try:
            yield entries
        finally:
            self.entries = None


def short_sql(sql: str, width: int = 110) -> str:
    text = re.sub(r"\s+", " ", sql).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FullRefresh:
    label: str
    seconds: float
    result: RefreshResult
    statements: list[Statement]
    now: datetime

    @property
    def sql_seconds(self) -> float:
        return sum(s.seconds for s in self.statements)

    def evaluation_seconds(self) -> float:
        """The statement that fills the temporary table (the criteria tree evaluated by the database)."""
        return sum(
            s.seconds
            for s in self.statements
            if s.sql.lstrip().upper().startswith("INSERT INTO TMP_GROUP_EVALUATION")
        )


@dataclass(slots=True)
class Baseline:
    loader: str
    users: int
    load_seconds: float
    evaluations: dict[int, float] = field(default_factory=dict)  # days -> seconds
    matched: dict[int, int] = field(default_factory=dict)
    checks: dict[int, str] = field(default_factory=dict)

    def total(self, days: int) -> float:
        return self.load_seconds + self.evaluations[days]


@dataclass(slots=True)
class Timings:
    label: str
    seconds: list[float]
    joined: int = 0
    left: int = 0
    statements: list[list[Statement]] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def p95_ms(self) -> float:
        if not self.seconds:
            return float("nan")
        ordered = sorted(self.seconds)
        return 1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@dataclass(slots=True)
class BackendResult:
    name: str
    users: int
    population: Population | None = None
    database: str = ""
    first: FullRefresh | None = None
    second: FullRefresh | None = None
    baseline: Baseline | None = None
    one_user: Timings | None = None
    one_user_python: Timings | None = None
    events: list[Timings] = field(default_factory=list)
    explain: list[tuple[str, list[tuple[float, str, str]]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0


def members(engine: sa.Engine) -> set[str]:
    m = user_group_members.c
    with engine.connect() as connection:
        return set(connection.execute(sa.select(m.user_id).where(m.group_id == GROUP_ID)).scalars())


def load_facts_select(engine: sa.Engine) -> list[UserFacts]:
    """Every user's facts from one streamed SELECT per table, built as ``SqlGroupFacts`` builds them."""
    e, a = user_enrolments.c, user_activity_agg.c
    enrolments: dict[str, list[EnrolmentFacts]] = {}
    units: dict[str, dict[tuple[str, str], int]] = {}
    facts: list[UserFacts] = []
    with engine.connect() as connection:
        streamed = connection.execution_options(yield_per=20_000)
        query = sa.select(
            e.userid,
            e.courseid,
            e.batchid,
            e.active,
            e.mode,
            e.enrolleddate,
            e.completionpercentage,
            e.contentstatus,
        )
        for row in streamed.execute(query):
            enrolments.setdefault(row.userid, []).append(
                EnrolmentFacts(
                    course_id=row.courseid,
                    batch_id=row.batchid,
                    active=bool(row.active),
                    mode=row.mode,
                    enrolled_on=aware(row.enrolleddate),
                    completion_percentage=row.completionpercentage,
                    content_status={key: int(value) for key, value in row.contentstatus.items()},
                )
            )
        unit_query = sa.select(a.user_id, a.activity_id, a.context_id, a.agg).where(
            a.activity_type == "CourseUnit"
        )
        for user_id, unit_id, context_id, agg in streamed.execute(unit_query):
            units.setdefault(user_id, {})[(context_id.removeprefix("cb:"), unit_id)] = int(
                agg.get("progress", 0)
            )
        for row in streamed.execute(sa.select(users)):
            facts.append(
                UserFacts(
                    user_from_row(row), tuple(enrolments.get(row.user_id, ())), units.get(row.user_id, {})
                )
            )
    return facts


def load_facts_pages(engine: sa.Engine) -> list[UserFacts]:
    """Every user's facts through ``SqlGroupFacts.load`` (pages of 2,000 ids)."""
    with engine.connect() as connection:
        ids = list(connection.execute(sa.select(users.c.user_id)).scalars())
        return list(SqlGroupFacts(connection).load(ids).values())


def run_baseline(app: App, loader: str, log: Callable[[str], None]) -> tuple[Baseline, list[UserFacts]]:
    gc.collect()
    started = time.perf_counter()
    facts = load_facts_select(app.engine) if loader == "select" else load_facts_pages(app.engine)
    baseline = Baseline(loader, len(facts), time.perf_counter() - started)
    log(f"baseline: loaded {len(facts):,} users' facts in {baseline.load_seconds:.1f} s ({loader})")
    return baseline, facts


def evaluate_python(
    app: App, baseline: Baseline, facts: list[UserFacts], days: int, now: datetime, log: Callable[[str], None]
) -> None:
    """``registry.holds`` per user for the tree with ``days``; checked against the members table."""
    scope = Scope.parse("instance")
    tree: Node = app.registry.parse(criteria(days), scope)
    context = EvaluationContext(scope, now)
    holds = app.registry.holds
    started = time.perf_counter()
    matched = {f.user.user_id for f in facts if holds(tree, f, context)}
    baseline.evaluations[days] = time.perf_counter() - started
    baseline.matched[days] = len(matched)
    stored = members(app.engine)
    if matched == stored:
        baseline.checks[days] = f"same {len(matched):,} users"
    else:
        only_python, only_sql = sorted(matched - stored), sorted(stored - matched)
        baseline.checks[days] = (
            f"DIFFERENT: {len(only_python):,} only in Python (e.g. {only_python[:3]}), "
            f"{len(only_sql):,} only in SQL (e.g. {only_sql[:3]})"
        )
    log(
        f"baseline: evaluated {days} days in {baseline.evaluations[days]:.2f} s, {len(matched):,} matched; "
        f"{baseline.checks[days]}"
    )


def timed_full(
    app: App, log_: StatementLog, label: str, call: Callable[[datetime], RefreshResult]
) -> FullRefresh:
    gc.collect()
    now = datetime.now(UTC)
    with log_.capture() as statements:
        started = time.perf_counter()
        result = call(now)
        seconds = time.perf_counter() - started
    return FullRefresh(label, seconds, result, list(statements), now)


def change_user(app: App, rng: random.Random, user_id: str, enrolled: bool, kind: str) -> None:
    """A login (``login``) or a progress change (``progress``) written directly (not timed)."""
    now = datetime.now(UTC)
    with app.engine.begin() as connection:
        if kind == "progress" and enrolled:
            value = rng.randint(0, 100)
            connection.execute(
                user_enrolments.update()
                .where(user_enrolments.c.userid == user_id, user_enrolments.c.batchid == BATCH_ID)
                .values(completionpercentage=value, progress=value)
            )
        else:
            at = now - timedelta(seconds=rng.randrange(2 * FIRST_DAYS * 86_400))
            connection.execute(users.update().where(users.c.user_id == user_id).values(last_login_at=at))


def run_one_user(
    app: App, log_: StatementLog, population: Population, samples: int, rng: random.Random
) -> tuple[Timings, Timings]:
    """refresh_group(only_users=[user]) after a direct change, and the Python one-user decision."""
    enrolled = set(population.enrolled)
    gc.collect()  # once: the garbage collector then runs as in production
    chosen = rng.sample(population.user_ids, min(len(population.user_ids), samples + WARMUP))
    timings = Timings("refresh_group(only_users=[user])", [])
    python = Timings("Python: SqlGroupFacts.load([user]) + MembershipRule.decide", [])
    for index, user_id in enumerate(chosen):
        kind = "progress" if index % 2 and user_id in enrolled else "login"
        change_user(app, rng, user_id, user_id in enrolled, kind)
        with log_.capture() as statements:
            started = time.perf_counter()
            _, result = groups.refresh_group(GROUP_ID, app.uow_factory(), only_users=[user_id])
            seconds = time.perf_counter() - started
        started = time.perf_counter()
        with app.uow_factory() as uow:
            group = uow.groups.get(GROUP_ID)
            assert group is not None
            include, exclude = uow.groups.overrides(GROUP_ID)
            facts = uow.group_facts.load([user_id])[user_id]
        MembershipRule(group.criteria, include, exclude).decide(
            app.registry, facts, EvaluationContext(group.scope, datetime.now(UTC))
        )
        python_seconds = time.perf_counter() - started
        if index < WARMUP:
            continue
        timings.seconds.append(seconds)
        timings.joined += result.joined
        timings.left += result.left
        timings.statements.append(list(statements))
        python.seconds.append(python_seconds)
    return timings, python


def run_events(
    app: App, log_: StatementLog, population: Population, samples: int, rng: random.Random
) -> list[Timings]:
    """refresh_on_event with a real UserLoggedIn or ProgressUpdated message for one user."""
    results = []
    gc.collect()
    for event_type in (UserLoggedIn.event_type, ProgressUpdated.event_type):
        pool = population.enrolled if event_type == ProgressUpdated.event_type else population.user_ids
        chosen = rng.sample(pool, min(len(pool), samples + WARMUP))
        timings = Timings(f"refresh_on_event({event_type.split('.')[-3]}.{event_type.split('.')[-2]})", [])
        for index, user_id in enumerate(chosen):
            now = datetime.now(UTC)
            if event_type == UserLoggedIn.event_type:
                with app.engine.begin() as connection:
                    connection.execute(
                        users.update().where(users.c.user_id == user_id).values(last_login_at=now)
                    )
                payload: dict[str, Any] = {"user_id": user_id, "logged_in_at": now.isoformat()}
                key = user_id
            else:
                change_user(app, rng, user_id, True, "progress")
                payload = {"batch_ids": [BATCH_ID], "user_ids": [user_id]}
                key = BATCH_ID
            message = OutboxMessage(id=index + 1, event_type=event_type, key=key, payload=payload, attempts=0)
            with log_.capture() as statements:
                started = time.perf_counter()
                refreshed = groups.refresh_on_event(message, app.uow_factory, app.registry)
                seconds = time.perf_counter() - started
            if GROUP_ID not in refreshed:
                raise RuntimeError(f"refresh_on_event({event_type}) did not refresh {GROUP_ID}")
            if index < WARMUP:
                continue
            timings.seconds.append(seconds)
            timings.joined += refreshed[GROUP_ID].joined
            timings.left += refreshed[GROUP_ID].left
            timings.statements.append(list(statements))
        results.append(timings)
    return results


# --------------------------------------------------------------------------------------------------
# EXPLAIN ANALYZE replay (PostgreSQL)
# --------------------------------------------------------------------------------------------------

SNAPSHOT = "bench_members_after_create"
EXPLAINABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


def replay(
    engine: sa.Engine, statements: Sequence[Statement], prepare: Sequence[str]
) -> list[tuple[float, str, str]]:
    """Run ``prepare`` then ``statements`` in one transaction, each explainable one under
    ``EXPLAIN (ANALYZE, BUFFERS)``; roll back. Returns (ms, statement, plan) per explained statement."""
    plans = []
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            for sql in prepare:
                connection.exec_driver_sql(sql)
            for statement in statements:
                if statement.sql == COMMIT:
                    continue
                head = statement.sql.lstrip().split(None, 1)[0].upper()
                if statement.executemany or head not in EXPLAINABLE:
                    connection.exec_driver_sql(statement.sql, statement.parameters)
                    continue
                started = time.perf_counter()
                rows = connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.parameters
                ).scalars()
                plan = "\n".join(rows)
                plans.append((1000 * (time.perf_counter() - started), short_sql(statement.sql, 400), plan))
        finally:
            transaction.rollback()
    return plans


def run_explain(app: App, result: BackendResult) -> None:
    gid = GROUP_ID.replace("'", "''")
    assert result.first is not None
    assert result.second is not None
    assert result.one_user is not None
    clear = [
        f"DELETE FROM {table} WHERE group_id = '{gid}'"
        for table in ("user_group_history", "user_group_members", "user_group_overrides", "user_groups")
    ]
    result.explain.append(
        ("create_group (first refresh)", replay(app.engine, result.first.statements, clear))
    )
    restore = [
        f"DELETE FROM user_group_members WHERE group_id = '{gid}'",
        f"INSERT INTO user_group_members SELECT * FROM {SNAPSHOT}",
    ]
    result.explain.append(
        (
            f"update_group (days {FIRST_DAYS} → {SECOND_DAYS})",
            replay(app.engine, result.second.statements, restore),
        )
    )
    result.explain.append(
        (
            "refresh_group(only_users=[user]) (the last one)",
            replay(app.engine, result.one_user.statements[-1], []),
        )
    )


# --------------------------------------------------------------------------------------------------
# One backend
# --------------------------------------------------------------------------------------------------


def measure_backend(
    name: str, args: argparse.Namespace, home: Path, log: Callable[[str], None]
) -> BackendResult:
    started = time.perf_counter()
    n_users = args.users if args.users is not None else DEFAULT_USERS[name]
    result = BackendResult(name, n_users)
    app = start_app(name, args, home)
    try:
        result.database = server_version(app.engine)
        statement_log = StatementLog(app.engine)
        seeded_at = datetime.now(UTC)
        log(f"{name}: generating {n_users:,} users")
        population, user_rows, enrolment_rows = generate(n_users, args.seed, seeded_at)
        log(f"{name}: seeding {len(user_rows):,} users, {len(enrolment_rows):,} enrolments")
        seed_started = time.perf_counter()
        seed(app, user_rows, enrolment_rows, seeded_at)
        population.seconds = time.perf_counter() - seed_started
        result.population = population
        del user_rows, enrolment_rows
        log(f"{name}: seeded in {population.seconds:.1f} s")

        # 1. create_group: the first full refresh (every member joins).
        definition = groups.GroupDefinition(
            name="Active learners, 5 districts or behind", scope="instance", criteria=criteria(FIRST_DAYS)
        )
        views: list[groups.GroupView] = []

        def create(now: datetime) -> RefreshResult:
            view, refreshed = groups.create_group(
                GROUP_ID, definition, app.uow_factory(), app.registry, now=now
            )
            views.append(view)
            return refreshed

        result.first = timed_full(app, statement_log, "create_group (first refresh: joins)", create)
        log(f"{name}: create_group {result.first.seconds:.2f} s, {result.first.result}")
        if args.explain and app.engine.dialect.name == "postgresql":
            with app.engine.begin() as connection:
                connection.exec_driver_sql(f"CREATE TABLE {SNAPSHOT} AS SELECT * FROM user_group_members")

        # 2. Baseline: the Python evaluation of the same tree, checked against the members.
        baseline, facts = run_baseline(app, args.facts_loader, log)
        evaluate_python(app, baseline, facts, FIRST_DAYS, result.first.now, log)

        # 1 (continued). The second full refresh: the days 90 -> 60 (only leaves).
        version = views[0].group.version

        def update(now: datetime) -> RefreshResult:
            _, refreshed = groups.update_group(
                GROUP_ID,
                app.uow_factory(),
                app.registry,
                expected_version=version,
                criteria=criteria(SECOND_DAYS),
                now=now,
            )
            assert refreshed is not None
            return refreshed

        result.second = timed_full(
            app, statement_log, f"update_group (days {FIRST_DAYS} → {SECOND_DAYS}: leaves)", update
        )
        log(f"{name}: update_group {result.second.seconds:.2f} s, {result.second.result}")
        evaluate_python(app, baseline, facts, SECOND_DAYS, result.second.now, log)
        result.baseline = baseline
        del facts
        gc.collect()
        check_full(result)

        # 3. One user after one event.
        rng = random.Random(args.seed + 1)
        result.one_user, result.one_user_python = run_one_user(
            app, statement_log, population, args.samples, rng
        )
        log(
            f"{name}: one-user refresh median {result.one_user.median_ms:.2f} ms, p95 {result.one_user.p95_ms:.2f} ms"
        )
        result.events = run_events(app, statement_log, population, args.event_samples, rng)
        for timings in result.events:
            log(f"{name}: {timings.label} median {timings.median_ms:.2f} ms, p95 {timings.p95_ms:.2f} ms")

        if args.explain and app.engine.dialect.name == "postgresql":
            log(f"{name}: EXPLAIN ANALYZE replay")
            run_explain(app, result)
    finally:
        app.close()
        if name == "postgres" and not args.keep:
            drop_database(args.database_url)
        result.wall_seconds = time.perf_counter() - started
    return result


def check_full(result: BackendResult) -> None:
    first, second, baseline = result.first, result.second, result.baseline
    assert first is not None
    assert second is not None
    assert baseline is not None
    problems = result.problems
    if first.result.left or first.result.joined != first.result.member_count:
        problems.append(f"create_group: expected only joins, got {first.result}")
    if second.result.joined:
        problems.append(f"update_group: {second.result.joined} joins (60 days is a subset of 90)")
    if first.result.member_count != baseline.matched[FIRST_DAYS]:
        problems.append(
            f"create_group: {first.result.member_count} members, Python {baseline.matched[FIRST_DAYS]}"
        )
    if second.result.member_count != baseline.matched[SECOND_DAYS]:
        problems.append(
            f"update_group: {second.result.member_count} members, Python {baseline.matched[SECOND_DAYS]}"
        )
    if first.result.member_count - second.result.left != second.result.member_count:
        problems.append("update_group: members before - leaves != members after")
    problems += [
        f"Python vs SQL, {days} days: {check}"
        for days, check in baseline.checks.items()
        if not check.startswith("same")
    ]


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool, left: int = 0) -> str:
    """A table as markdown or aligned plain text; the first ``left`` columns are left-aligned."""
    if markdown:
        escaped = [[cell.replace("|", "\\|") for cell in row] for row in rows]
        align = ["---" if i < left else "---:" for i in range(len(headers))]
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in escaped]
        return "\n".join(lines)
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join(
        [line(headers), "  ".join("-" * width for width in widths), *(line(row) for row in rows)]
    )


def backend_label(name: str) -> str:
    return {"embedded": "embedded (SQLite)", "postgres": "PostgreSQL"}.get(name, name)


def ms(value: float) -> str:
    return NOT_RUN if math.isnan(value) else f"{value:.2f} ms"


def main_table(results: Sequence[BackendResult], markdown: bool) -> str:
    headers = ["backend", "measurement", "time", "joined / left / members", "baseline (same run)", "ratio"]
    rows = []
    for r in results:
        label = backend_label(r.name)
        b = r.baseline
        for full, days in ((r.first, FIRST_DAYS), (r.second, SECOND_DAYS)):
            if full is None or b is None:
                continue
            res = full.result
            rows.append(
                [
                    label,
                    f"{full.label}, {r.users:,} users",
                    f"{full.seconds:.2f} s",
                    f"{res.joined:,} / {res.left:,} / {res.member_count:,}",
                    f"Python one by one: load {b.load_seconds:.1f} s + evaluate {b.evaluations[days]:.2f} s "
                    f"= {b.total(days):.1f} s ({b.matched[days]:,} users; {b.checks[days]})",
                    f"{b.total(days) / full.seconds:.1f}x faster",
                ]
            )
        if r.one_user is not None and r.one_user_python is not None:
            u, p = r.one_user, r.one_user_python
            rows.append(
                [
                    label,
                    f"{u.label}, {len(u.seconds)} users",
                    f"median {ms(u.median_ms)}, p95 {ms(u.p95_ms)}",
                    f"{u.joined:,} / {u.left:,} / —",
                    f"{p.label} (no write): median {ms(p.median_ms)}, p95 {ms(p.p95_ms)}",
                    f"{u.median_ms / p.median_ms:.1f}x the time",
                ]
            )
            for e in r.events:
                rows.append(
                    [
                        label,
                        f"{e.label}, one user, {len(e.seconds)} events",
                        f"median {ms(e.median_ms)}, p95 {ms(e.p95_ms)}",
                        f"{e.joined:,} / {e.left:,} / —",
                        f"refresh_group(only_users=[user]): median {ms(u.median_ms)}",
                        f"{e.median_ms / u.median_ms:.2f}x the time",
                    ]
                )
    return render_table(headers, rows, markdown, left=2)


def statement_table(full: FullRefresh, markdown: bool) -> str:
    commits = sum(s.sql == COMMIT for s in full.statements)
    rows = [
        [short_sql(s.sql), f"{1000 * s.seconds:,.1f}", f"{s.rowcount:,}" if s.rowcount >= 0 else NOT_RUN]
        for s in full.statements
        if s.seconds >= 0.001
    ]
    rest = [s for s in full.statements if s.seconds < 0.001]
    if rest:
        rows.append(
            [
                f"({len(rest)} other statements, under 1 ms each)",
                f"{1000 * sum(s.seconds for s in rest):.1f}",
                "",
            ]
        )
    rows.append(
        [
            f"all {len(full.statements) - commits} statements and {commits} COMMIT (the rest of "
            f"{1000 * full.seconds:,.0f} ms is Python)",
            f"{1000 * full.sql_seconds:,.1f}",
            "",
        ]
    )
    return render_table(["statement", "ms", "rows"], rows, markdown, left=1)


def one_user_table(timings: Timings, markdown: bool) -> str:
    """The median time of each distinct statement of a one-user refresh, slowest first."""
    by_sql: dict[str, list[float]] = {}
    for statements in timings.statements:
        for s in statements:
            by_sql.setdefault(s.sql, []).append(s.seconds)
    counts = [len(statements) for statements in timings.statements]
    totals = [sum(s.seconds for s in statements) for statements in timings.statements]
    rows = [
        [
            short_sql(sql),
            f"{1000 * statistics.median(values):.3f}",
            f"{len(values) / len(timings.statements):.1f}",
        ]
        for sql, values in sorted(by_sql.items(), key=lambda item: -statistics.median(item[1]))
    ][:10]
    rows.append(
        [
            f"all statements and COMMIT (median {statistics.median(counts):.0f} a refresh); the refresh "
            f"itself: median {timings.median_ms:.2f} ms (the rest is Python)",
            f"{1000 * statistics.median(totals):.3f}",
            "",
        ]
    )
    return render_table(
        ["statement (10 slowest by median)", "median ms", "per refresh"], rows, markdown, left=1
    )


def aims(r: BackendResult) -> list[str]:
    out = []
    label = backend_label(r.name)
    if r.first is not None and r.second is not None:
        worst = max(r.first.seconds, r.second.seconds)
        scale = "" if r.users >= 1_000_000 else f" (on {r.users:,} users, not 1M: indicative only)"
        out.append(
            f"- {label}: evaluation + difference under {AIM_FULL_SECONDS:.0f} s on 1M users: create "
            f"{r.first.seconds:.2f} s, update {r.second.seconds:.2f} s: "
            f"{'met' if worst < AIM_FULL_SECONDS else 'MISSED'}{scale}"
        )
    if r.baseline is not None and r.first is not None and r.second is not None:
        b = r.baseline
        speedups = [b.total(FIRST_DAYS) / r.first.seconds, b.total(SECOND_DAYS) / r.second.seconds]
        out.append(
            f"- {label}: ≥ {AIM_SPEEDUP:.0f}x the Python one-by-one evaluation (load + evaluate, {b.loader} "
            f"loader) vs the whole refresh with its writes: {speedups[0]:.1f}x (create), {speedups[1]:.1f}x "
            f"(update): {'met' if min(speedups) >= AIM_SPEEDUP else 'MISSED'}; evaluation alone "
            f"(Python holds over loaded facts vs the INSERT ... SELECT into the temporary table): "
            f"{b.evaluations[FIRST_DAYS] / r.first.evaluation_seconds():.1f}x, "
            f"{b.evaluations[SECOND_DAYS] / r.second.evaluation_seconds():.1f}x"
        )
        out.append(
            f"- {label}: Python and SQL select the same users: {b.checks[FIRST_DAYS]} ({FIRST_DAYS} days), "
            f"{b.checks[SECOND_DAYS]} ({SECOND_DAYS} days)"
        )
    if r.one_user is not None:
        u = r.one_user
        out.append(
            f"- {label}: one user re-evaluated after one event under {AIM_ONE_USER_MS:.0f} ms: median "
            f"{u.median_ms:.2f} ms, p95 {u.p95_ms:.2f} ms: {'met' if u.median_ms < AIM_ONE_USER_MS else 'MISSED'}"
            f" (p95 {'met' if u.p95_ms < AIM_ONE_USER_MS else 'missed'}); refresh_on_event: "
            + ", ".join(f"{e.label} median {e.median_ms:.2f} ms" for e in r.events)
        )
    return out


def report(results: Sequence[BackendResult], args: argparse.Namespace, wall: float) -> str:
    markdown: bool = args.markdown
    heading = "## " if markdown else ""
    sub = "### " if markdown else ""
    out = [f"{heading}User group membership benchmark", ""]
    now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
    out.append(
        f"- date: {now}; Python {platform.python_version()}, SQLAlchemy {sa.__version__}, "
        f"SQLite {sqlite3.sqlite_version}; {platform.platform()}\n"
        f"- code under test: {args.revision}\n"
        f"- CPU count: {os.cpu_count()}, load average at the end: "
        f"{', '.join(f'{load:.2f}' for load in os.getloadavg())}"
    )
    tree = orjson.dumps(criteria(FIRST_DAYS)).decode()
    out.append(
        f"- group (scope instance): `{tree}`, then days {FIRST_DAYS} → {SECOND_DAYS}\n"
        f"- Python baseline loader: {args.facts_loader}; one-user samples: {args.samples} "
        f"(+{WARMUP} warm-up), events: {args.event_samples} of each type (+{WARMUP} warm-up)"
    )
    for r in results:
        p = r.population
        if p is None:
            continue
        out.append(
            f"- {backend_label(r.name)} ({r.database}), seed {args.seed}: {r.users:,} users ({p.staff:,} staff, "
            f"{p.never_logged_in:,} never logged in), {len(p.enrolled):,} enrolled in the batch "
            f"({p.active_enrolments:,} active); seeding {p.seconds:.1f} s (not measured)"
        )
    out += ["", main_table(results, markdown), ""]
    out += [f"{sub}Aims", ""]
    for r in results:
        out += aims(r)
    out.append("")
    for r in results:
        label = backend_label(r.name)
        for full in (r.first, r.second):
            if full is not None:
                out += [f"{sub}Statements of {full.label}, {label}", "", statement_table(full, markdown), ""]
        if r.one_user is not None and r.one_user.statements:
            out += [
                f"{sub}Statements of {r.one_user.label}, {label}",
                "",
                one_user_table(r.one_user, markdown),
                "",
            ]
        if r.problems:
            out += [f"Problems, {label}:", "", *(f"- {problem}" for problem in r.problems), ""]
        else:
            out += [f"Checks, {label}: every check holds (counts, and Python = SQL for both trees).", ""]
        for title, plans in r.explain:
            slow = [plan for plan in plans if plan[0] >= EXPLAIN_MIN_MS]
            out += [
                f"{sub}EXPLAIN (ANALYZE, BUFFERS), {title}, {label}: statements over {EXPLAIN_MIN_MS:.0f} ms "
                f"({len(slow)} of {len(plans)})",
                "",
            ]
            for elapsed, sql, plan in slow:
                out += [f"`{sql}` ({elapsed:.0f} ms with EXPLAIN)", "", "```", plan, "```", ""]
    out.append(f"Wall time of the whole run: {wall:.0f} s")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def _count(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError("expected a count of 1 or more")
    return value


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"backends are {', '.join(BACKENDS)}")
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark of user-group membership: SQL evaluation + difference against the Python "
        "one-by-one evaluation, and one-user refreshes after events.",
        epilog=f"Scratch store: --database-url's database is dropped and created (and dropped at the end "
        f"unless --keep). Smoke test: --users 20000. Default database: {DEFAULT_DATABASE_URL}.",
    )
    parser.add_argument(
        "--users",
        type=_count,
        default=None,
        help=f"default {DEFAULT_USERS['postgres']:,} on postgres, {DEFAULT_USERS['embedded']:,} on embedded",
    )
    parser.add_argument("--backends", type=_names, default=["postgres"], help="embedded,postgres")
    parser.add_argument("--samples", type=_count, default=DEFAULT_SAMPLES, help="one-user refreshes")
    parser.add_argument(
        "--event-samples", type=_count, default=DEFAULT_EVENT_SAMPLES, help="events of each type"
    )
    parser.add_argument("--facts-loader", choices=("select", "pages"), default="select")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE replay (PostgreSQL)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database afterwards")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.revision = source_revision()  # at the start: the modules are imported already
    started = time.perf_counter()

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="courseinfra-groups-bench-"))
    try:
        results = [measure_backend(name, args, workdir / "homes", log) for name in args.backends]
        print(report(results, args, time.perf_counter() - started))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
