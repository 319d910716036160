"""The user groups and legacy links of ``bench/console_pages.py``: their seeding and the requests timed.

Seeded after the enrolments (not measured):

- every enrolled learner in the user directory (bulk-inserted: a profile with one of 30 districts, a
  last login within 400 days), and 20% of the large batch's enrolments in the ``verified`` mode (the
  others ``audit``), both modes offered by the course;
- :data:`LEARNERS_GROUP`, a criteria group of the large course's scope (actively enrolled in it), created
  through the use case: a full evaluation, so that every active learner joined (about 98% of
  ``--enrolments``) with a history row each;
- :data:`GROUP_COUNT` more groups for the list (instance and course scopes, without criteria: their
  creation evaluates nothing), every 5th with a profile criterion and frozen (never evaluated);
- four links to the local legacy groups of the large course: the ``verified`` track (authority
  ``legacy``, pulled at creation: a fifth of the learners), two cohorts of a tenth of the learners
  each (authority ``legacy``: filled in the legacy tables, then pulled by a reconciliation, then 5 more
  added on the legacy side only, a difference), and a cohort of the default authority ``user_group``
  of a hundredth of the learners, filled through
  courseinfra (both sides), with 3 rows of drift and 3 sync failures kept.

Timed: the groups list, the large group's page (its first 50 members and history rows), the explain
page of one member, the preview of a criteria change over every candidate (a POST, as the page's form
sends it: the members whose progress in the large batch is 50% or more), and the legacy links page.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from fastapi.testclient import TestClient

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.adapters.sql.tables import legacy_cohort_members, user_enrolments, users
from courseinfra.bootstrap import App
from courseinfra.domain.legacy import Track, link_of
from courseinfra.services.groups import GroupDefinition
from courseinfra.services.sync.ports import SyncFailure

LEARNERS_GROUP = "bench-learners"
EXPLAINED = "learner-0000042"
GROUP_COUNT = 500
CHUNK = 20_000
DISTRICTS = [f"district-{n:02d}" for n in range(30)]


class Client(Protocol):
    """What the timed calls need of the bench: its logged-in console client and an application."""

    console: TestClient
    app: App


def seed_groups(app: App, course_id: str, batch_id: str, now: datetime, rng: random.Random) -> None:
    """The directory users, the groups and the links described in the module's docstring."""
    with app.engine.connect() as connection:
        learners = sorted(connection.execute(sa.select(user_enrolments.c.userid).distinct()).scalars().all())
    rows = [
        {
            "user_id": user_id,
            "username": user_id,
            "email": None,
            "name": None,
            "organisation": "bench-org",
            "last_login_at": now - timedelta(days=rng.randrange(400)),
            "is_staff": False,
            "profile": {"district": rng.choice(DISTRICTS)},
            "created_at": now - timedelta(days=400),
            "updated_at": now - timedelta(days=400),
        }
        for user_id in learners
    ]
    with app.engine.begin() as connection:
        for begin in range(0, len(rows), CHUNK):
            connection.execute(users.insert(), rows[begin : begin + CHUNK])
        # A fifth of the large batch in the verified track (user ids ending in 0 or 5).
        connection.execute(
            user_enrolments.update()
            .where(
                user_enrolments.c.batchid == batch_id,
                sa.or_(user_enrolments.c.userid.like("%0"), user_enrolments.c.userid.like("%5")),
            )
            .values(mode="verified")
        )
    analyze(app, "users", "user_enrolments")
    app.groups.create_group(
        LEARNERS_GROUP,
        GroupDefinition(
            name="Learners of the bench course",
            scope=f"course:{course_id}",
            description="Every learner actively enrolled in the course.",
            criteria={"type": "course_enrolment", "operator": "is"},
        ),
    )
    for n in range(GROUP_COUNT):
        criteria = (
            {
                "type": "profile_field",
                "operator": "equals",
                "config": {"field": "district", "value": DISTRICTS[n % 30]},
            }
            if n % 5 == 0
            else None
        )
        app.groups.create_group(
            f"bench-group-{n:04d}",
            GroupDefinition(
                name=f"Group {n}",
                scope="instance" if n % 2 else f"course:do_bench_other_{n % 40:03d}",
                criteria=criteria,
                frozen=criteria is not None,
            ),
        )
    seed_links(app, course_id, learners, now)
    analyze(app, "user_group_members", "user_group_history", "legacy_cohort_members")


def seed_links(app: App, course_id: str, learners: list[str], now: datetime) -> None:
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups), "the bench links the local legacy groups"
    tenth = len(learners) // 10
    legacy.offer_tracks(
        course_id, [Track(course_id, "audit", "Audit"), Track(course_id, "verified", "Verified")]
    )
    app.groups.create_group(
        "bench-verified",
        GroupDefinition(
            name="Verified learners",
            scope=f"course:{course_id}",
            criteria={
                "type": "legacy_track",
                "operator": "member_of",
                "config": {"course_id": course_id, "mode": "verified", "authority": "legacy"},
            },
        ),
    )
    for n, group_id in enumerate(("bench-cohort-a", "bench-cohort-b")):
        app.groups.create_group(
            group_id,
            GroupDefinition(
                name=f"Cohort {n}",
                scope=f"course:{course_id}",
                criteria={
                    "type": "legacy_cohort",
                    "operator": "member_of",
                    "config": {"course_id": course_id, "authority": "legacy"},
                },
            ),
        )
        cohort = legacy_id(app, group_id)
        chosen = learners[n * tenth : (n + 1) * tenth]
        with app.engine.begin() as connection:
            connection.execute(
                legacy_cohort_members.insert(),
                [{"course_id": course_id, "user_id": user, "cohort_id": cohort} for user in chosen],
            )
        app.groups.reconcile(group_id)
        # A legacy edit not pulled yet: a difference of 5 on the page.
        extra = learners[3 * tenth + 5 * n : 3 * tenth + 5 * (n + 1)]
        legacy.add_to_cohort(course_id, cohort, extra)
    pushed = "bench-cohort-pushed"
    app.groups.create_group(
        pushed,
        GroupDefinition(
            name="Cohort pushed",
            scope=f"course:{course_id}",
            criteria={"type": "legacy_cohort", "operator": "member_of", "config": {"course_id": course_id}},
        ),
    )
    app.groups.change_legacy_members(pushed, add=learners[2 * tenth : 2 * tenth + tenth // 10])
    drifting = learners[4 * tenth : 4 * tenth + 3]
    legacy.add_to_cohort(course_id, legacy_id(app, pushed), drifting)
    link = link_of(app.groups.get_group(pushed).group.criteria)
    assert link is not None
    app.groups.linked.record_drift(pushed, link, drifting, "bench-edit")
    with app.uow_factory() as uow:
        for n in range(3):
            uow.sync_log.add(
                SyncFailure(0, now, pushed, "change-members", "legacy-unavailable", f"bench failure {n}")
            )
        uow.commit()


def legacy_id(app: App, group_id: str) -> str:
    link = link_of(app.groups.get_group(group_id).group.criteria)
    assert link is not None
    assert link.legacy_id is not None
    return link.legacy_id


def analyze(app: App, *tables: str) -> None:
    """Statistics after a bulk load, as autovacuum (PostgreSQL) or ``ANALYZE`` (SQLite) would have them."""
    if app.engine.dialect.name == "postgresql":
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in tables:
                connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
    else:
        with app.engine.begin() as connection:
            for table in tables:
                connection.exec_driver_sql(f"ANALYZE {table}")


#: CSRF tokens by session (the client's cookies): each backend's run logs in anew.
TOKENS: dict[str, str] = {}


def csrf_token(bench: Client) -> str:
    """A CSRF token of the console's session, read once from a page's form (not timed)."""
    session = repr(sorted(bench.console.cookies.items()))
    if session not in TOKENS:
        page = bench.console.get(f"/console/groups/{LEARNERS_GROUP}")
        TOKENS[session] = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return TOKENS[session]


def preview_change(batch_id: str) -> Callable[[Client], int]:
    """POST the preview form with criteria that keep the members at 50% or more of ``batch_id``."""
    criteria = json.dumps(
        {
            "and": [
                {"type": "course_enrolment", "operator": "is"},
                {"type": "course_progress", "operator": "ge", "config": {"batch_id": batch_id, "value": 50}},
            ]
        }
    )

    def call(bench: Client) -> int:
        answer = bench.console.post(
            f"/console/groups/{LEARNERS_GROUP}/preview",
            data={"csrf_token": csrf_token(bench), "criteria": criteria},
        )
        return answer.status_code

    return call


def group_pages(batch_id: str) -> list[tuple[str, str | Callable[[Client], int]]]:
    """(name, path or call) of the pages timed, in the table's order."""
    return [
        (f"user groups list ({GROUP_COUNT + 5} groups)", "/console/groups"),
        ("user group: ~98k members, history (first page)", f"/console/groups/{LEARNERS_GROUP}"),
        ("user group: explain one learner", f"/console/groups/{LEARNERS_GROUP}/explain?user={EXPLAINED}"),
        ("user group: preview a criteria change over every candidate", preview_change(batch_id)),
        ("legacy links (4 links, ~41k legacy members)", "/console/links"),
    ]
