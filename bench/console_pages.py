"""Benchmark of the operator console's pages with 100,000 enrolments, beside baselines on the same data.

Run as ``.venv/bin/python bench/console_pages.py [--enrolments 100000] [--backends embedded,postgres]
[--database-url URL] [--requests 20] [--markdown]``; PostgreSQL's URL defaults to
``$COURSEINFRA_BENCH_DATABASE_URL``, else a scratch database ``courseinfra_bench_console`` on loopback
(dropped and created, never one of the test suite's).

Scenario per backend, in a fresh store (the embedded relation cache file in both cases):

- a TPD course of 10 modules x 5 lessons x 4 leaves (200 leaves, 261 cache keys), stored, published and
  relayed, so that the relation cache job built its cache; 40 more published courses for the list;
- one batch of it with ``--enrolments`` learners, seeded in bulk with SQLAlchemy Core (not measured):
  20% not started, 15% completed (completion dates spread over 60 days), the others 1..99%, 2% left;
  60 more batches (of the other courses) for the list;
- three report runs (one of the large batch, two of a small one) and 200 failed events (lines that are
  not JSON, ingested);
- an operator token with the ``pii`` grant, logged in to the console through its login form.

Measured: each page of :data:`PAGES` requested ``--requests`` times (after 2 unmeasured requests) through
the ASGI application (``create_app``, the one ``courseinfra serve`` runs) with an in-process HTTP client
(one event loop for all requests),
median and 95th percentile of the wall time of each request; beside them, in the same run, baselines:
``/healthz``, the API's ``GET /v1/batches/{id}`` (a bearer token), and the raw SQL count of the batch's
enrolments on the engine. Add a page by appending a :class:`Measured` to :data:`PAGES`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from console_groups import group_pages, seed_groups
from console_jobs import jobs_pages, seed_samples
from courseinfra.adapters.sql.tables import user_enrolments
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE
from courseinfra.entrypoints.api import create_app
from courseinfra.services import access, content, enrolments
from courseinfra.services.events.ingest import ingest
from courseinfra.services.reports import generate_reports
from courseinfra.settings import load_settings
from scratch import drop_database, recreate_database, source_revision

COURSE_ID = "do_bench_console_course"
BATCH_ID = "bench-console-batch"
SMALL_BATCH_ID = "bench-console-small"
MODULES, LESSONS, LEAVES = 10, 5, 4
OTHER_COURSES, OTHER_BATCHES = 40, 60
FAILED_EVENTS = 200
SEED_CHUNK = 20_000
AIM_MS = 300.0
DEFAULT_DATABASE_URL = "postgresql+psycopg://courseinfra:courseinfra@127.0.0.1:5432/courseinfra_bench_console"
NOW = datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Measured:
    """A request to time: a console page (the logged-in client) or a baseline."""

    name: str
    path: str
    baseline: bool = False
    #: Sends the request itself instead (a baseline that is no console page); returns the status.
    call: Callable[[Bench], int] | None = None


@dataclass
class Bench:
    app: App
    console: TestClient
    api: TestClient
    bearer: str


def raw_count(bench: Bench) -> int:
    with bench.app.engine.connect() as connection:
        query = sa.select(sa.func.count()).where(user_enrolments.c.batchid == BATCH_ID)
        connection.execute(query).scalar_one()
    return 200


def api_batch(bench: Bench) -> int:
    return bench.api.get(
        f"/v1/batches/{BATCH_ID}", headers={"Authorization": f"Bearer {bench.bearer}"}
    ).status_code


#: What is timed, in the table's order. Other pages (jobs, groups, links) are appended here.
PAGES: list[Measured] = [
    Measured("baseline: /healthz", "/healthz", baseline=True),
    Measured("baseline: API GET /v1/batches/{id}", "", baseline=True, call=api_batch),
    Measured("baseline: SQL count of the batch's enrolments", "", baseline=True, call=raw_count),
    Measured("console home", "/console/"),
    Measured("failed events", "/console/failed-events"),
    Measured("courses list", "/console/courses"),
    Measured("course relation cache tree (200 leaves)", f"/console/courses/{COURSE_ID}"),
    Measured("batches list", "/console/batches"),
    Measured("batch: histogram, completions, report runs", f"/console/batches/{BATCH_ID}"),
]
# The user groups and legacy links pages, seeded by bench/console_groups.py.
PAGES += [
    Measured(name, "", call=target) if callable(target) else Measured(name, target)
    for name, target in group_pages(BATCH_ID)
]
# The jobs page over each window, with a day of counter samples seeded by bench/console_jobs.py.
PAGES += [Measured(name, path) for name, path in jobs_pages()]


def hierarchy(identifier: str, modules: int, lessons: int, leaves: int) -> dict[str, Any]:
    def node(ident: str, name: str, children: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "identifier": ident,
            "mimeType": COLLECTION_MIME_TYPE,
            "visibility": "Parent",
            "name": name,
            "children": children,
        }

    return {
        "identifier": identifier,
        "mimeType": COLLECTION_MIME_TYPE,
        "visibility": "Default",
        "name": f"Course {identifier}",
        "framework": "TPD",
        "channel": "bench-org",
        "children": [
            node(
                f"{identifier}-m{m}",
                f"Module {m}",
                [
                    node(
                        f"{identifier}-m{m}-l{n}",
                        f"Lesson {m}.{n}",
                        [
                            {
                                "identifier": f"{identifier}-m{m}-l{n}-r{r}",
                                "mimeType": "application/pdf",
                                "visibility": "Default",
                            }
                            for r in range(leaves)
                        ],
                    )
                    for n in range(lessons)
                ],
            )
            for m in range(modules)
        ],
    }


def seed(app: App, count: int, rng: random.Random) -> None:
    content.put_hierarchy(hierarchy(COURSE_ID, MODULES, LESSONS, LEAVES), app.uow_factory())
    content.publish(COURSE_ID, app.uow_factory())
    for n in range(OTHER_COURSES):
        content.put_hierarchy(hierarchy(f"do_bench_other_{n:03d}", 1, 1, 2), app.uow_factory())
        content.publish(f"do_bench_other_{n:03d}", app.uow_factory())
    app.relay()
    start = (NOW - timedelta(days=90)).date()
    for batch_id in (BATCH_ID, SMALL_BATCH_ID):
        enrolments.create_batch(
            CourseBatch(batch_id, COURSE_ID, batch_id, NOW, start_date=start), app.uow_factory()
        )
    for n in range(OTHER_BATCHES):
        course_id = f"do_bench_other_{n % OTHER_COURSES:03d}"
        enrolments.create_batch(
            CourseBatch(f"bench-other-{n:03d}", course_id, "other", NOW, start_date=start), app.uow_factory()
        )
    rows = []
    for n in range(count):
        roll = rng.random()
        completed_on = None
        if roll < 0.20:
            status, percent = 0, 0
        elif roll < 0.35:
            status, percent = 2, 100
            completed_on = NOW - timedelta(days=rng.randrange(60), seconds=rng.randrange(86_400))
        else:
            status, percent = 1, rng.randrange(1, 100)
        rows.append(
            {
                "userid": f"learner-{n:07d}",
                "courseid": COURSE_ID,
                "batchid": BATCH_ID,
                "active": rng.random() >= 0.02,
                "enrolleddate": NOW - timedelta(days=80),
                "datetime": NOW - timedelta(days=1),
                "contentstatus": {},
                "progress": percent * (MODULES * LESSONS * LEAVES) // 100,
                "completionpercentage": percent,
                "status": status,
                "completedon": completed_on,
                "certificates": [],
            }
        )
    for n in range(5):
        rows.append({**rows[n], "userid": f"small-{n}", "batchid": SMALL_BATCH_ID})
    with app.engine.begin() as connection:
        for begin in range(0, len(rows), SEED_CHUNK):
            connection.execute(user_enrolments.insert(), rows[begin : begin + SEED_CHUNK])
    if app.engine.dialect.name == "postgresql":
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE user_enrolments")
    today = NOW.date()
    generate_reports(app.uow_factory, app.reports, app.report_options, as_of=today, batch_ids=(BATCH_ID,))
    for _ in range(2):
        generate_reports(
            app.uow_factory, app.reports, app.report_options, as_of=today, batch_ids=(SMALL_BATCH_ID,)
        )
    ingest([f"not json {n}" for n in range(FAILED_EVENTS)], "bench", app.router, app.uow_factory)
    seed_groups(app, COURSE_ID, BATCH_ID, NOW, rng)
    seed_samples(app, NOW)  # last: a day of samples of the counters the seeding left


def log_in(client: TestClient, secret: str) -> None:
    form = client.get("/console/login")
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/console/login", data={"csrf_token": token, "token": secret, "next": "/console/"})
    if answer.status_code != 303:
        raise SystemExit(f"login failed: {answer.status_code} {answer.text[:200]}")


def time_one(bench: Bench, measured: Measured) -> float:
    began = time.perf_counter()
    if measured.call is not None:
        status = measured.call(bench)
    else:
        client = bench.api if measured.baseline else bench.console
        status = client.get(measured.path).status_code
    elapsed = time.perf_counter() - began
    if status != 200:
        raise SystemExit(f"{measured.name}: status {status}")
    return elapsed * 1000


def measure(bench: Bench, requests: int) -> dict[str, tuple[float, float]]:
    results = {}
    for measured in PAGES:
        for _ in range(2):
            time_one(bench, measured)
        times = sorted(time_one(bench, measured) for _ in range(requests))
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        results[measured.name] = (statistics.median(times), p95)
    return results


def run_backend(name: str, args: argparse.Namespace, home: Path) -> dict[str, tuple[float, float]]:
    folder = home / name
    folder.mkdir(parents=True)
    if name == "postgres":
        recreate_database(args.database_url)
        settings = load_settings(home=folder, database_url=args.database_url, redis_url=None)
    else:
        settings = load_settings(home=folder, database_url=None, redis_url=None)
    app = bootstrap(settings)
    try:
        began = time.perf_counter()
        seed(app, args.enrolments, random.Random(args.seed))
        print(
            f"{name}: seeded {args.enrolments:,} enrolments in {time.perf_counter() - began:.1f} s",
            file=sys.stderr,
        )
        _, secret = access.create_token("bench operator", "operator", app.uow_factory(), pii=True)
        # Entered clients keep one event loop thread for all their requests (a client not entered
        # starts one per request, tens of milliseconds that no server spends).
        with (
            TestClient(create_app(app), follow_redirects=False) as console,
            TestClient(create_app(app)) as api,
        ):
            log_in(console, secret)
            return measure(Bench(app, console, api, secret), args.requests)
    finally:
        app.close()
        if name == "postgres" and not args.keep:
            drop_database(args.database_url)


def table(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    backends = list(results)
    labels = {"embedded": "embedded (SQLite)", "postgres": "PostgreSQL"}
    head = "| page | " + " | ".join(f"{labels.get(b, b)} median / p95 (ms)" for b in backends) + " |"
    lines = [head, "|---|" + "---:|" * len(backends)]
    for measured in PAGES:
        cells = []
        for backend in backends:
            median, p95 = results[backend][measured.name]
            late = "" if measured.baseline or p95 <= AIM_MS else " (over 300 ms)"
            cells.append(f"{median:.1f} / {p95:.1f}{late}")
        lines.append(f"| {measured.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enrolments", type=int, default=100_000)
    parser.add_argument("--backends", default="embedded,postgres")
    parser.add_argument(
        "--database-url", default=os.environ.get("COURSEINFRA_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL scratch database")
    parser.add_argument("--markdown", action="store_true", help="print the table only")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-console-") as home:
        for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
            results[name] = run_backend(name, args, Path(home))
    if not args.markdown:
        print(
            f"{args.enrolments:,} enrolments in one batch, {args.requests} requests per page; {source_revision()}"
        )
    print(table(results))


if __name__ == "__main__":
    main()
