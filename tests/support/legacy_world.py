"""The linked-group world of the legacy sync tests (ADR 0012, 0022), on both legacy backends: the local
tables on the test database, and the Open edX client against a fake Open edX over real HTTP; each on
every database backend. A pytest plugin (``world``), with the helpers that read both sides."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from courseinfra.adapters.legacy import LocalLegacyGroups
from courseinfra.adapters.legacy.openedx import OpenEdxLegacyGroups
from courseinfra.adapters.sql.tables import legacy_cohorts, legacy_teams
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.legacy import LegacyUnavailable, Teamset, TeamsetType, Track, link_of
from courseinfra.domain.users import User
from courseinfra.services import content, enrolments
from courseinfra.services.groups import DeletePolicy, GroupDefinition, UserGroups
from courseinfra.services.groups.ports import MembershipChange
from courseinfra.services.sync.ports import LegacyGroups
from courseinfra.settings import Settings
from tests.support.builders import load_json
from tests.support.openedx import TOKEN, FakeOpenEdx
from tests.support.servers import EXAMPLES

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LOCAL_COURSE = "democourse"  # the local backend's courses are this platform's courses
REMOTE_COURSE = "course-v1:Org+Demo+2026"
USERS = ("u1", "u2", "u3", "u4", "u5", "u6")
MODES = {"u1": "audit", "u2": "audit", "u3": "audit", "u4": "verified", "u5": "verified", "u6": "audit"}
KINDS = ("cohort", "team", "track")


# --- the two worlds ------------------------------------------------------------------------------------


@dataclass
class World:
    """A linked-group world: the app (its database), a legacy backend with a course seeded (users u1-u6
    in the directory and enrolled, audit and verified offered, teamsets ``projects`` and ``pairs``), and
    the sync over them. ``fail`` injects a legacy failure at a named step."""

    app: App
    legacy: LegacyGroups
    course: str
    monkeypatch: pytest.MonkeyPatch
    fake: FakeOpenEdx | None = None
    sync: UserGroups = field(init=False)

    def __post_init__(self) -> None:
        self.sync = self.with_policy(DeletePolicy.RESTRICT)

    @property
    def remote(self) -> bool:
        return self.fake is not None

    def with_policy(self, policy: DeletePolicy) -> UserGroups:
        return UserGroups(self.app.uow_factory, self.app.registry, policy)

    # --- failure injection ---

    def _fake_step(self, step: str) -> tuple[str, str, int]:
        cohorts = f"/api/cohorts/v1/courses/{self.course}/cohorts/"
        return {
            "create_cohort": ("POST", cohorts, 0),
            # A new cohort's id is not known beforehand: its creation is the first POST let through.
            "add_to_new_cohort": ("POST", cohorts, 1),
            "add_to_cohort": ("POST", cohorts, 0),
            "remove_from_cohort": ("DELETE", cohorts, 0),
            "update_cohort": ("PATCH", cohorts, 0),
            "cohort_members": ("GET", cohorts, 0),
            "create_team": ("POST", "/api/team/v0/teams/", 0),
            "add_to_team": ("POST", "/api/team/v0/team_membership/", 0),
            "add_to_new_team": ("POST", "/api/team/v0/team_membership/", 0),
            "remove_from_team": ("DELETE", "/api/team/v0/team_membership/", 0),
            "update_team": ("PATCH", "/api/team/v0/teams/", 0),
            "delete_team": ("DELETE", "/api/team/v0/teams/", 0),
            "team_members": ("GET", "/api/team/v0/team_membership/", 0),
            "set_track": ("POST", "/api/enrollment/v1/enrollment", 0),
            "track_members": ("GET", "/api/enrollment/v1/enrollments/", 0),
        }[step]

    def fail(self, step: str, *, after: int = 0) -> None:
        """The next call of ``step`` (after ``after`` let through) fails as an unavailable legacy system:
        on the fake, a 503 for the request; locally, a ``LegacyUnavailable`` raised instead of the call."""
        if self.fake is not None:
            method, prefix, skip = self._fake_step(step)
            self.fake.fail_next(
                method, prefix, status=503, after=after + skip, body="<h1>Service Unavailable</h1>"
            )
            return
        name = step.replace("_new_", "_")
        # On the class: each unit of work hands out an instance bound to its transaction (uow.legacy).
        original = getattr(type(self.legacy), name)
        left = {"after": after, "times": 1}

        def failing(*args: Any, **kwargs: Any) -> Any:
            if left["after"] > 0:
                left["after"] -= 1
            elif left["times"] > 0:
                left["times"] -= 1
                raise LegacyUnavailable(f"injected: the legacy system failed at {name}")
            return original(*args, **kwargs)

        self.monkeypatch.setattr(type(self.legacy), name, failing)

    # --- reading the legacy side directly ---

    def team_count(self) -> int:
        if self.fake is not None:
            return len(self.fake.teams)
        with self.app.engine.connect() as connection:
            return int(connection.scalar(sa.select(sa.func.count()).select_from(legacy_teams)) or 0)

    def cohort_names(self) -> list[str]:
        if self.fake is not None:
            return sorted(c.name for c in self.fake.cohorts.values())
        with self.app.engine.connect() as connection:
            return sorted(connection.scalars(sa.select(legacy_cohorts.c.name)))


def seed_local(app: App) -> None:
    content.put_hierarchy(load_json(EXAMPLES / "democourse.json"), app.uow_factory())
    content.publish(LOCAL_COURSE, app.uow_factory())
    enrolments.create_batch(CourseBatch("B1", LOCAL_COURSE, "Batch 1", AT), app.uow_factory())
    for user, mode in MODES.items():
        enrolments.enrol(user, "B1", app.uow_factory(), at=AT, mode=mode)
    local = app.legacy
    assert isinstance(local, LocalLegacyGroups)
    local.offer_tracks(
        LOCAL_COURSE, [Track(LOCAL_COURSE, "audit", "Audit"), Track(LOCAL_COURSE, "verified", "Verified")]
    )
    for each in teamsets(LOCAL_COURSE):
        local.configure_teamset(each)


def teamsets(course: str) -> list[Teamset]:
    return [
        Teamset("projects", course, "Projects", TeamsetType.OPEN, 50),
        Teamset("pairs", course, "Pairs", TeamsetType.OPEN, 2),
    ]


def add_directory_users(app: App, user_ids: tuple[str, ...] = USERS) -> None:
    with app.uow_factory() as uow:
        uow.users.upsert_many([User(u) for u in user_ids], AT)
        uow.commit()


@pytest.fixture(params=["local", "openedx"])
def world(
    request: pytest.FixtureRequest, app: App, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """The local tables (the application as bootstrapped), or an application bootstrapped on the same
    database with the Open edX backend, a fake Open edX server."""
    add_directory_users(app)
    if request.param == "local":
        seed_local(app)
        yield World(app, app.legacy, LOCAL_COURSE, monkeypatch)
        return
    base_url, fake = request.getfixturevalue("openedx")
    fake.seed(REMOTE_COURSE, enrolled=MODES, tracks=["audit", "verified"], teamsets=teamsets(REMOTE_COURSE))
    remote = bootstrap(
        settings.model_copy(
            update={"legacy_backend": "openedx", "openedx_url": base_url, "openedx_token": TOKEN}
        )
    )
    assert isinstance(remote.legacy, OpenEdxLegacyGroups)
    yield World(remote, remote.legacy, REMOTE_COURSE, monkeypatch, fake)
    remote.close()


# --- helpers -------------------------------------------------------------------------------------------


def criteria(
    world: World, kind: str, legacy_id: str | None = None, *, teamset: str = "projects"
) -> dict[str, Any]:
    config: dict[str, Any] = {"course_id": world.course}
    if kind == "cohort":
        name = "legacy_cohort"
        if legacy_id is not None:
            config["cohort_id"] = legacy_id
    elif kind == "team":
        name = "legacy_team"
        config["teamset_id"] = teamset
        if legacy_id is not None:
            config["team_id"] = legacy_id
    else:
        name = "legacy_track"
        config["mode"] = legacy_id or "verified"
    return {"type": name, "operator": "member_of", "config": config}


def create(
    world: World,
    group_id: str,
    kind: str,
    include: tuple[str, ...] = (),
    *,
    legacy_id: str | None = None,
    name: str | None = None,
) -> str:
    """Create a linked group; return its legacy id."""
    definition = GroupDefinition(
        name=name or group_id.title(),
        scope="instance",
        criteria=criteria(world, kind, legacy_id),
        include=include,
    )
    world.sync.create_group(group_id, definition)
    return linked_id(world, group_id)


def linked_id(world: World, group_id: str) -> str:
    with world.app.uow_factory() as uow:
        group = uow.groups.get(group_id)
    assert group is not None
    link = link_of(group.criteria)
    assert link is not None
    assert link.legacy_id is not None
    return link.legacy_id


def legacy_members(world: World, kind: str, legacy_id: str) -> set[str]:
    if kind == "cohort":
        return world.legacy.cohort_members(world.course, legacy_id)
    if kind == "team":
        return world.legacy.team_members(legacy_id)
    return world.legacy.track_members(world.course, legacy_id)


def legacy_name(world: World, kind: str, legacy_id: str) -> str | None:
    if kind == "cohort":
        return world.legacy.get_cohort(world.course, legacy_id).name
    if kind == "team":
        return world.legacy.get_team(legacy_id).name
    return None


def members(world: World, group_id: str) -> set[str]:
    with world.app.uow_factory() as uow:
        return {m.user_id for m in uow.memberships.members(group_id, limit=1000)}


def history(world: World, group_id: str, user_id: str | None = None) -> list[MembershipChange]:
    with world.app.uow_factory() as uow:
        return uow.memberships.history(group_id, user_id=user_id, limit=1000)
