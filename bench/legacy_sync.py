"""Benchmark of membership changes on linked legacy groups: ``--users`` users added to (and removed from) a
cohort and a team in bulk, beside the same users added with one call per user, in the same run.

Run from the repository root as ``.venv/bin/python bench/legacy_sync.py [--users 10000]
[--backends embedded,postgres,openedx] [--per-user-cap 1000] [--markdown]``. The Open edX backend imports
the fake Open edX of the test suite (``tests.support.openedx``: a FastAPI app served over real HTTP by uvicorn
on a free port of 127.0.0.1), which is why the benchmark runs from the repository root.

Backends:

- ``embedded``: the local legacy tables (``LocalLegacyGroups``) on the embedded SQLite store
  (``load_settings(home=<tmp>)``);
- ``postgres``: the local legacy tables on PostgreSQL (the scratch database of ``--database-url``);
- ``openedx``: the Open edX REST client (``OpenEdxLegacyGroups``) against the fake server; the user groups
  themselves are on the embedded SQLite store.

Scenario (not timed; the seeding time is printed): ``--users`` users in the directory
(``uow.users.upsert_many``); one course, published (a small hierarchy, ``content.publish``, relayed), with
one batch and every user actively enrolled in it (mode ``audit``; a bulk insert into ``user_enrolments``);
three teamsets of ``max_team_size`` = ``--users`` (one per team measurement below: a user can be in one team
of a teamset only). For ``openedx`` the same users, enrolments and teamsets are seeded into the fake with
``FakeOpenEdx.seed`` (course-level ``max_team_size`` = ``--users`` too).

Measured for each backend and each legacy kind (cohort, team), with ``time.perf_counter`` around the calls:

1. *bulk, through the sync service*: a linked user group created with ``app.groups.create_group`` (criteria
   ``legacy_cohort`` / ``legacy_team`` without an id: the cohort or team is created; scope the course; not
   timed), then ``change_legacy_members(group, add=all users)`` timed, then ``change_legacy_members(group, remove=all users)``
   timed. Checked: the legacy group and the user group hold every user after the add and none after the
   remove;
2. *bulk, the port alone*: ``legacy.add_to_cohort(course, cohort, all users)`` /
   ``legacy.add_to_team(team, all users)`` on a fresh cohort / team. The cohort is emptied afterwards (not
   timed), so that the next cohort adds users rather than moving them;
3. *one call per user* (the baseline): the same users added with one port call each
   (``add_to_cohort(course, cohort, [user])`` / ``add_to_team(team, [user])``) on another fresh cohort /
   team. On the Open edX backend the team baseline runs on the first ``--per-user-cap`` users only (default
   1,000; 0: all), and the time for all users is extrapolated, labelled as such: each of its calls reads
   the team (whose GET returns every membership) and the teamset's memberships (100 a page), which grow
   with every user added (for all 10,000 users some 500,000 requests), so the per-call time is fitted as
   ``a + b·k`` (k: the members already added, least squares over the calls measured) and summed over all
   users; the plain linear extrapolation, a lower bound, is printed beside it. Each call of the baseline is timed too: the table gives the mean of the first and of
   the last 100.

A step that fails (an exception) is recorded in the table ("failed") and in the checks with its error, and
the run goes on; an add through the sync service that fails skips the remove that follows it.

Open edX's team API has no bulk endpoint: the client's ``add_to_team`` checks the rules once and then POSTs
one membership per user, so "bulk" there is the client's own loop (the table says so). Cohorts take 1,000
users per POST; removals are one DELETE per user for both. For ``openedx`` the HTTP requests the fake
received during each measurement are counted.

Smoke test: ``--users 1000``.

Scratch store: the PostgreSQL database of ``--database-url`` (``courseinfra_bench``) is dropped and created
again, and dropped at the end unless ``--keep``. Redis is not used.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.adapters.legacy.openedx import OpenEdxLegacyGroups
from courseinfra.adapters.sql.tables import user_enrolments
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE
from courseinfra.domain.legacy import LegacyKind, LegacyLink, Teamset, TeamsetType, Track, link_of
from courseinfra.domain.users import User
from courseinfra.services import content, enrolments, groups
from courseinfra.services.groups import GroupDefinition
from courseinfra.services.sync.ports import LegacyGroups
from courseinfra.settings import load_settings
from scratch import drop_database, recreate_database, source_revision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support.openedx import TOKEN, FakeOpenEdx, serve_fake_openedx

DEFAULT_USERS = 10_000
DEFAULT_PER_USER_CAP = 1_000  # the Open edX team baseline: each call reads the growing team (O(N²))
DEFAULT_DATABASE_URL = "postgresql+psycopg://courseinfra:courseinfra@127.0.0.1:5432/courseinfra_bench"
BACKENDS = ("embedded", "postgres", "openedx")
KINDS = ("cohort", "team")
NOT_RUN = "—"
SEED_CHUNK = 10_000
EDGE_CALLS = 100  # per-call times of the first and the last calls of the baseline

COURSE_ID = "course-v1:Bench+Legacy+2026"
BATCH_ID = "0130000000000000000042"
CHANNEL = "0126684405014528002"
MODE = "audit"
TEAMSETS = {"sync": "bench-sync", "bulk": "bench-bulk", "per-user": "bench-per-user"}


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Timed:
    """One timed measurement: ``users`` users handled in ``seconds`` (of ``total_users`` wanted)."""

    seconds: float = math.nan
    users: int = 0
    total_users: int = 0
    requests: int | None = None  # HTTP requests the fake received (openedx)
    calls: list[float] = field(default_factory=list)  # per-call seconds (the baseline)
    error: str | None = None

    @property
    def ran(self) -> bool:
        return self.error is None and not math.isnan(self.seconds)

    @property
    def rate(self) -> float:
        return self.users / self.seconds if self.ran and self.seconds > 0 else math.nan

    @property
    def capped(self) -> bool:
        return self.users < self.total_users

    @property
    def full_seconds(self) -> float:
        """The time for every user: measured, or extrapolated from the calls measured (see
        :meth:`fit`)."""
        if not self.ran or not self.users:
            return math.nan
        if not self.capped:
            return self.seconds
        a, b = self.fit()
        n = self.total_users
        return n * a + b * n * (n - 1) / 2

    def fit(self) -> tuple[float, float]:
        """Least squares of the per-call time against the number of users already added: ``a + b·k``
        seconds for call ``k`` (b ≥ 0; b = 0 is the plain linear extrapolation)."""
        calls = self.calls
        n = len(calls)
        if n < 2:
            return (self.seconds / max(n, 1), 0.0)
        mean_k = (n - 1) / 2
        mean_t = sum(calls) / n
        var = sum((k - mean_k) ** 2 for k in range(n))
        b = max(0.0, sum((k - mean_k) * (t - mean_t) for k, t in enumerate(calls)) / var)
        return mean_t - b * mean_k, b


@dataclass(slots=True)
class KindResult:
    kind: str
    sync_add: Timed = field(default_factory=Timed)
    sync_remove: Timed = field(default_factory=Timed)
    port: Timed = field(default_factory=Timed)
    per_user: Timed = field(default_factory=Timed)
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cleanup_seconds: float = math.nan


@dataclass(slots=True)
class BackendResult:
    name: str
    store: str = ""
    users: int = 0
    seed_seconds: float = math.nan
    kinds: list[KindResult] = field(default_factory=list)
    error: str | None = None


# --------------------------------------------------------------------------------------------------
# Backends and scenario
# --------------------------------------------------------------------------------------------------


def server_version(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            version = connection.exec_driver_sql("SHOW server_version").scalar_one()
            commit = connection.exec_driver_sql("SHOW synchronous_commit").scalar_one()
            return f"PostgreSQL {version} (synchronous_commit {commit})"
        return f"SQLite {sqlite3.sqlite_version}"


def user_ids(n: int) -> list[str]:
    """Usernames too on Open edX (the client sends our user id as the username)."""
    return [f"learner-{i:06d}" for i in range(n)]


def teamsets(n: int) -> list[Teamset]:
    return [
        Teamset(teamset_id, COURSE_ID, f"Benchmark teamset ({purpose})", TeamsetType.OPEN, n)
        for purpose, teamset_id in TEAMSETS.items()
    ]


def hierarchy() -> dict[str, Any]:
    return {
        "identifier": COURSE_ID,
        "mimeType": COLLECTION_MIME_TYPE,
        "visibility": "Default",
        "name": "Legacy sync benchmark course",
        "contentType": "Course",
        "channel": CHANNEL,
        "children": [
            {
                "identifier": f"do_31300000000000000000000{i:02d}",
                "mimeType": "application/pdf",
                "visibility": "Default",
                "name": f"Resource {i}",
                "contentType": "Resource",
                "channel": CHANNEL,
            }
            for i in range(3)
        ],
    }


def seed(app: App, users: list[str], fake: FakeOpenEdx | None) -> None:
    """The directory, the published course with its batch and enrolments, the teamsets (and the fake's
    copy of the users, enrolments and teamsets)."""
    now = datetime.now(UTC)
    with app.uow_factory() as uow:
        uow.users.upsert_many(
            [
                User(u, username=u, email=f"{u}@example.org", name=f"Learner {u[-6:]}", organisation="bench")
                for u in users
            ],
            now,
        )
        uow.commit()
    content.put_hierarchy(hierarchy(), app.uow_factory())
    content.publish(COURSE_ID, app.uow_factory(), at=now)
    app.relay()
    enrolments.create_batch(CourseBatch(BATCH_ID, COURSE_ID, "Benchmark batch", now), app.uow_factory())
    rows: list[dict[str, Any]] = [
        {
            "userid": u,
            "courseid": COURSE_ID,
            "batchid": BATCH_ID,
            "active": True,
            "addedby": None,
            "enrolleddate": now,
            "datetime": now,
            "contentstatus": {},
            "lastreadcontentid": None,
            "lastreadcontentstatus": None,
            "progress": 0,
            "completionpercentage": 0,
            "status": 0,
            "completedon": None,
            "certificates": [],
            "mode": MODE,
        }
        for u in users
    ]
    with app.engine.begin() as connection:
        for start in range(0, len(rows), SEED_CHUNK):
            connection.execute(user_enrolments.insert(), rows[start : start + SEED_CHUNK])
    if app.engine.dialect.name == "postgresql":
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in ("users", "user_enrolments"):
                connection.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
    else:
        with app.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    legacy = app.legacy
    if isinstance(legacy, LocalLegacyGroups):
        legacy.offer_tracks(COURSE_ID, [Track(COURSE_ID, MODE, MODE.title())])
        for each in teamsets(len(users)):
            legacy.configure_teamset(each)
    if fake is not None:
        fake.seed(
            COURSE_ID,
            enrolled=dict.fromkeys(users, MODE),
            tracks=(MODE,),
            teamsets=teamsets(len(users)),
            max_team_size=len(users),
        )


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


def _error(error: BaseException) -> str:
    """One line: the class, the code, the message (SQLAlchemy's background link left out)."""
    code = getattr(error, "code", None)
    message = " ".join(
        line.strip() for line in str(error).splitlines() if not line.startswith("(Background on this error")
    )
    text = f"{type(error).__name__}{f' ({code})' if code else ''}: {message}"
    return text if len(text) <= 300 else text[:297] + "..."


def timed(
    call: Callable[[], object], users: int, total: int, fake: FakeOpenEdx | None, log: Callable[[str], None]
) -> Timed:
    """Time ``call`` (a failure is recorded, not raised)."""
    gc.collect()
    before = len(fake.calls) if fake is not None else 0
    result = Timed(users=users, total_users=total)
    started = time.perf_counter()
    try:
        call()
    except Exception as error:
        result.error = f"after {time.perf_counter() - started:.1f} s: {_error(error)}"
        log(f"    failed {result.error}")
    else:
        result.seconds = time.perf_counter() - started
    if fake is not None:
        result.requests = len(fake.calls) - before
    return result


def one_by_one(
    call: Callable[[str], object],
    users: Sequence[str],
    total: int,
    fake: FakeOpenEdx | None,
    log: Callable[[str], None],
) -> Timed:
    """One call per user, each timed; the total is the sum of the loop."""
    gc.collect()
    before = len(fake.calls) if fake is not None else 0
    result = Timed(users=len(users), total_users=total)
    started = time.perf_counter()
    try:
        for user in users:
            at = time.perf_counter()
            call(user)
            result.calls.append(time.perf_counter() - at)
    except Exception as error:
        result.error = f"after {len(result.calls)} calls: {_error(error)}"
        log(f"    failed: {result.error}")
    else:
        result.seconds = time.perf_counter() - started
    if fake is not None:
        result.requests = len(fake.calls) - before
    return result


def legacy_members(legacy: LegacyGroups, link: LegacyLink) -> set[str]:
    assert link.legacy_id is not None
    if link.kind is LegacyKind.COHORT:
        return legacy.cohort_members(link.course_id, link.legacy_id)
    return legacy.team_members(link.legacy_id)


def stored_members(app: App, group_id: str) -> set[str]:
    members: set[str] = set()
    after = ""
    with app.uow_factory() as uow:
        while page := uow.memberships.members(group_id, after=after, limit=5000):
            members.update(m.user_id for m in page)
            after = page[-1].user_id
    return members


def check_sizes(
    result: KindResult, step: str, legacy: set[str] | None, group: set[str] | None, wanted: set[str]
) -> None:
    parts = []
    for label, found in (("legacy group", legacy), ("user group", group)):
        if found is None:
            continue
        parts.append(f"{label} {len(found):,}")
        if found != wanted:
            result.problems.append(
                f"{step}: the {label} holds {len(found):,} users, {len(found - wanted):,} unexpected and "
                f"{len(wanted - found):,} missing (expected {len(wanted):,})"
            )
    result.checks.append(f"{step}: {', '.join(parts)}")


def measure_kind(
    app: App,
    kind: str,
    users: list[str],
    cap: int | None,
    fake: FakeOpenEdx | None,
    log: Callable[[str], None],
) -> KindResult:
    legacy, sync = app.legacy, app.groups
    n = len(users)
    everyone = set(users)
    result = KindResult(kind)

    # 1. bulk, through the sync service
    group_id = f"bench-{kind}-sync"
    config: dict[str, Any] = {"course_id": COURSE_ID}
    if kind == "team":
        config["teamset_id"] = TEAMSETS["sync"]
    definition = GroupDefinition(
        name=f"Benchmark {kind} (sync)",
        scope=f"course:{COURSE_ID}",
        criteria={"type": f"legacy_{kind}", "operator": "member_of", "config": config},
    )
    try:
        view, _ = sync.create_group(group_id, definition)
        link = link_of(view.group.criteria)
        assert link is not None
        assert link.legacy_id is not None
        log(
            f"  {kind}: linked group {group_id} created ({kind} {link.legacy_id}); change_legacy_members(add={n:,})"
        )
        result.sync_add = timed(lambda: sync.change_legacy_members(group_id, add=users), n, n, fake, log)
        log(f"    {result.sync_add.seconds:.2f} s")
        check_sizes(
            result, "after sync add", legacy_members(legacy, link), stored_members(app, group_id), everyone
        )
        count = groups.get_group(group_id, app.uow_factory).group.member_count
        if count != n:
            result.problems.append(f"after sync add: the group's member_count is {count:,}, not {n:,}")
        if result.sync_add.error is not None:
            result.problems.append(f"change_legacy_members(add) failed: {result.sync_add.error}")
            result.sync_remove.error = "not run: the add failed"
        else:
            log(f"  {kind}: change_legacy_members(remove={n:,})")
            result.sync_remove = timed(
                lambda: sync.change_legacy_members(group_id, remove=users), n, n, fake, log
            )
            log(f"    {result.sync_remove.seconds:.2f} s")
            if result.sync_remove.error is not None:
                result.problems.append(f"change_legacy_members(remove) failed: {result.sync_remove.error}")
            check_sizes(
                result,
                "after sync remove",
                legacy_members(legacy, link),
                stored_members(app, group_id),
                set(),
            )
    except Exception as error:
        result.problems.append(f"sync: {_error(error)}")
        log(f"    sync failed: {_error(error)}")

    # 2. bulk, the port alone; 3. one call per user
    per_user = users if cap is None or cap >= n or kind != "team" else users[:cap]
    try:
        if kind == "cohort":
            bulk = legacy.create_cohort(COURSE_ID, "Benchmark bulk")
            bulk_link = LegacyLink(LegacyKind.COHORT, COURSE_ID, bulk.cohort_id)
            log(f"  cohort: add_to_cohort(all {n:,})")
            result.port = timed(
                lambda: legacy.add_to_cohort(COURSE_ID, bulk.cohort_id, users), n, n, fake, log
            )
            log(f"    {result.port.seconds:.2f} s")
            if result.port.error is not None:
                result.problems.append(f"bulk port add failed: {result.port.error}")
            check_sizes(result, "after bulk port add", legacy_members(legacy, bulk_link), None, everyone)
            started = time.perf_counter()
            legacy.remove_from_cohort(COURSE_ID, bulk.cohort_id, users)  # the next cohort adds, not moves
            result.cleanup_seconds = time.perf_counter() - started
            log(f"    emptied again (not timed in the table): {result.cleanup_seconds:.2f} s")
            single = legacy.create_cohort(COURSE_ID, "Benchmark per user")
            single_link = LegacyLink(LegacyKind.COHORT, COURSE_ID, single.cohort_id)
            log(f"  cohort: {len(per_user):,} x add_to_cohort([user])")
            result.per_user = one_by_one(
                lambda u: legacy.add_to_cohort(COURSE_ID, single.cohort_id, [u]), per_user, n, fake, log
            )
        else:
            team = legacy.create_team(COURSE_ID, TEAMSETS["bulk"], "Benchmark bulk")
            bulk_link = LegacyLink(LegacyKind.TEAM, COURSE_ID, team.team_id, TEAMSETS["bulk"])
            log(f"  team: add_to_team(all {n:,})")
            result.port = timed(lambda: legacy.add_to_team(team.team_id, users), n, n, fake, log)
            log(f"    {result.port.seconds:.2f} s")
            if result.port.error is not None:
                result.problems.append(f"bulk port add failed: {result.port.error}")
            check_sizes(result, "after bulk port add", legacy_members(legacy, bulk_link), None, everyone)
            other = legacy.create_team(COURSE_ID, TEAMSETS["per-user"], "Benchmark per user")
            single_link = LegacyLink(LegacyKind.TEAM, COURSE_ID, other.team_id, TEAMSETS["per-user"])
            log(f"  team: {len(per_user):,} x add_to_team([user])")
            result.per_user = one_by_one(
                lambda u: legacy.add_to_team(other.team_id, [u]), per_user, n, fake, log
            )
        log(f"    {result.per_user.seconds:.2f} s")
        if result.per_user.error is not None:
            result.problems.append(f"per-user adds failed: {result.per_user.error}")
        step = "after per-user adds" + (f" (first {len(per_user):,})" if len(per_user) < n else "")
        check_sizes(result, step, legacy_members(legacy, single_link), None, set(per_user))
    except Exception as error:
        result.problems.append(f"port: {_error(error)}")
        log(f"    port measurements failed: {_error(error)}")
    return result


def measure_backend(
    name: str, args: argparse.Namespace, home: Path, log: Callable[[str], None]
) -> BackendResult:
    result = BackendResult(name, users=args.users)
    folder = home / name
    folder.mkdir(parents=True, exist_ok=True)
    users = user_ids(args.users)
    with ExitStack() as stack:
        fake: FakeOpenEdx | None = None
        if name == "openedx":
            server = stack.enter_context(serve_fake_openedx())
            fake = server.fake
            settings = load_settings(
                home=folder,
                database_url=None,
                redis_url=None,
                legacy_backend="openedx",
                openedx_url=server.base_url,
                openedx_token=TOKEN,
            )
        elif name == "postgres":
            recreate_database(args.database_url)
            if not args.keep:
                stack.callback(drop_database, args.database_url)
            settings = load_settings(
                home=folder, database_url=args.database_url, redis_url=None, legacy_backend="local"
            )
        else:
            settings = load_settings(home=folder, database_url=None, redis_url=None, legacy_backend="local")
        app = bootstrap(settings)
        stack.callback(app.close)
        if isinstance(app.legacy, OpenEdxLegacyGroups):
            stack.callback(app.legacy.close)
            result.store = f"the fake Open edX (uvicorn) at {server.base_url}; user groups on {server_version(app.engine)}"
        else:
            result.store = f"local legacy tables on {server_version(app.engine)}"
        log(f"{name}: seeding {args.users:,} users ({result.store})")
        started = time.perf_counter()
        seed(app, users, fake)
        result.seed_seconds = time.perf_counter() - started
        log(f"{name}: seeded in {result.seed_seconds:.1f} s")
        cap = (args.per_user_cap or None) if name == "openedx" else None
        for kind in KINDS:
            result.kinds.append(measure_kind(app, kind, users, cap, fake, log))
    return result


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
    return {
        "embedded": "embedded (SQLite)",
        "postgres": "PostgreSQL",
        "openedx": "Open edX client → fake",
    }[name]


def kind_label(backend: str, kind: str) -> str:
    if backend == "openedx" and kind == "team":
        return "team (no bulk endpoint: bulk = the client's loop, one POST a user)"
    if backend == "openedx":
        return "cohort (1,000 users a POST; removal one DELETE a user)"
    return kind


def cell(t: Timed) -> str:
    if t.error is not None:
        return "not run" if t.error.startswith("not run") else "failed " + t.error.split(":")[0]
    if not t.ran:
        return NOT_RUN
    return f"{t.seconds:.2f} s ({t.rate:,.0f}/s)"


def seconds(value: float) -> str:
    return f"{value:,.1f} s" if value < 100 else f"{value:,.0f} s"


def per_user_cell(t: Timed) -> str:
    if not t.ran:
        return cell(t)
    if t.capped:
        a, b = t.fit()
        linear = t.seconds * t.total_users / t.users
        return (
            f"≈ {seconds(t.full_seconds)} EXTRAPOLATED (per call {1000 * a:.1f} ms + {1000 * b:.4f} ms a member "
            f"already added, fitted on the first {t.users:,} calls: {t.seconds:.2f} s, {t.rate:,.0f}/s; "
            f"linear: {seconds(linear)})"
        )
    return cell(t)


def speedup(fast: Timed, baseline: Timed, kind: str) -> str:
    if not fast.ran or not baseline.ran:
        return NOT_RUN
    ratio = baseline.full_seconds / fast.seconds
    approx = "≈ " if baseline.capped else ""
    return f"{approx}{ratio:,.1f}x"


def main_table(results: Sequence[BackendResult], markdown: bool) -> str:
    headers = [
        "backend",
        "kind",
        "add via sync",
        "remove via sync",
        "bulk port add",
        "per-user calls (baseline)",
        "bulk port vs per-user",
        "add via sync vs per-user",
        "checks",
    ]
    rows = []
    for r in results:
        for k in r.kinds:
            rows.append(
                [
                    backend_label(r.name),
                    kind_label(r.name, k.kind),
                    cell(k.sync_add),
                    cell(k.sync_remove),
                    cell(k.port),
                    per_user_cell(k.per_user),
                    speedup(k.port, k.per_user, k.kind),
                    speedup(k.sync_add, k.per_user, k.kind),
                    "hold" if not k.problems else f"{len(k.problems)} FAILED",
                ]
            )
    return render_table(headers, rows, markdown, left=2)


def ms(seconds: Sequence[float]) -> str:
    if not seconds:
        return NOT_RUN
    return f"{1000 * sum(seconds) / len(seconds):.2f}"


def detail_table(results: Sequence[BackendResult], markdown: bool) -> str:
    headers = [
        "backend",
        "kind",
        f"per-user call, mean ms (first {EDGE_CALLS})",
        f"(last {EDGE_CALLS})",
        "HTTP requests: add via sync",
        "remove via sync",
        "bulk port add",
        "per-user calls",
    ]
    rows = []
    for r in results:
        for k in r.kinds:
            calls = k.per_user.calls
            rows.append(
                [
                    backend_label(r.name),
                    k.kind,
                    ms(calls[:EDGE_CALLS]),
                    ms(calls[-EDGE_CALLS:]),
                    *(
                        NOT_RUN if t.requests is None else f"{t.requests:,}"
                        for t in (k.sync_add, k.sync_remove, k.port, k.per_user)
                    ),
                ]
            )
    return render_table(headers, rows, markdown, left=2)


def report(results: Sequence[BackendResult], args: argparse.Namespace, wall: float) -> str:
    markdown: bool = args.markdown
    heading = "## " if markdown else ""
    sub = "### " if markdown else ""
    out = [f"{heading}Legacy sync benchmark: bulk membership changes against one call per user", ""]
    now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
    out.append(
        f"- date: {now}; Python {platform.python_version()}, SQLAlchemy {sa.__version__}, "
        f"SQLite {sqlite3.sqlite_version}; {platform.platform()}\n"
        f"- code under test: {args.revision}\n"
        f"- CPU count: {os.cpu_count()}, load average at the end: "
        f"{', '.join(f'{load:.2f}' for load in os.getloadavg())}\n"
        f"- {args.users:,} users, all enrolled (mode {MODE}) in {COURSE_ID} (published, one batch); "
        f"3 teamsets of max_team_size {args.users:,} (sync, bulk port, per-user: one team per teamset "
        "a user); linked groups scoped to the course"
    )
    if args.per_user_cap and args.per_user_cap < args.users and "openedx" in args.backends:
        out.append(
            f"- per-user team baseline on the Open edX backend: the first {args.per_user_cap:,} users only "
            f"(--per-user-cap), the time for all {args.users:,} EXTRAPOLATED: each call reads the team (its "
            "GET returns every membership) and the teamset's memberships (100 a page), which grow with every "
            "user added, so the per-call time is fitted as a + b·(members already added) and summed over all "
            "users; the plain linear extrapolation (a lower bound) is given beside it"
        )
    for r in results:
        line = f"- {backend_label(r.name)}: {r.store}; seeding {r.seed_seconds:.1f} s (not measured)"
        out.append(line if r.error is None else f"{line}; FAILED: {r.error}")
    out += ["", main_table(results, markdown), ""]
    out += [f"{sub}Per-user cost and requests", "", detail_table(results, markdown), ""]
    cleanups = [
        f"{backend_label(r.name)} {k.cleanup_seconds:.2f} s"
        for r in results
        for k in r.kinds
        if not math.isnan(k.cleanup_seconds)
    ]
    if cleanups:
        out += [
            "The cohort of the bulk port measurement is emptied before the per-user one, not timed in the "
            f"tables (remove_from_cohort of every user): {', '.join(cleanups)}.",
            "",
        ]
    out += [f"{sub}Checks", ""]
    for r in results:
        for k in r.kinds:
            status = "hold" if not k.problems else "FAILED"
            out.append(f"- {backend_label(r.name)}, {k.kind}: {status}: {'; '.join(k.checks) or NOT_RUN}")
            out += [f"  - PROBLEM: {problem}" for problem in k.problems]
    out += ["", f"Wall time of the whole run: {wall:.0f} s"]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def _count(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
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
        description="Benchmark of linked legacy groups: a cohort and a team changed in bulk (through the "
        "sync service and through the port) against one port call per user.",
        epilog=f"Run from the repository root (imports tests.support.openedx). Scratch store: --database-url's "
        f"database is dropped and created (and dropped at the end unless --keep). Smoke test: --users 1000. "
        f"Default database: {DEFAULT_DATABASE_URL}.",
    )
    parser.add_argument("--users", type=_count, default=DEFAULT_USERS, help=f"default {DEFAULT_USERS:,}")
    parser.add_argument(
        "--backends", type=_names, default=list(BACKENDS), help="embedded,postgres,openedx (default all)"
    )
    parser.add_argument(
        "--per-user-cap",
        type=int,
        default=DEFAULT_PER_USER_CAP,
        help="the per-user team baseline on the Open edX backend runs on the first K users and the time "
        f"for all is extrapolated (default {DEFAULT_PER_USER_CAP:,}; 0: no cap)",
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database afterwards")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.per_user_cap < 0:
        parser.error("--per-user-cap: expected 0 (no cap) or a count")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.revision = source_revision()  # at the start: the modules are imported already
    started = time.perf_counter()

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="courseinfra-legacy-sync-bench-"))
    try:
        results = []
        for name in args.backends:
            try:
                results.append(measure_backend(name, args, workdir / "homes", log))
            except Exception as error:
                log(f"{name}: FAILED: {_error(error)}")
                results.append(BackendResult(name, users=args.users, error=_error(error)))
        print(report(results, args, time.perf_counter() - started))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
