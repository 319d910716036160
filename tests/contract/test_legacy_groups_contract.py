"""The legacy groups contract (:mod:`tests.support.legacy_groups_contract`) on the local tables, on SQLite
and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from courseinfra.adapters.legacy import LocalLegacyGroups
from courseinfra.adapters.sql.engine import create_engine, migrate
from courseinfra.adapters.sql.store import SqlHierarchyStore
from courseinfra.adapters.sql.tables import course_batch, user_enrolments
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE
from courseinfra.domain.legacy import LegacyError, Teamset, Track
from courseinfra.services.sync.ports import LegacyGroups
from tests.support.builders import collection
from tests.support.legacy_groups_contract import (
    NOWHERE,
    A,
    LegacyGroupsContract,
    broken,
    seed_course,
    teamset,
)
from tests.support.servers import truncate_all

# --- the local tables ---------------------------------------------------------------------------------


@dataclass
class LocalWorld:
    """The local implementation, with courses made of rows: the modes and teamsets through its admin
    methods, the enrolments written directly (one batch per course)."""

    engine: sa.Engine
    legacy: LegacyGroups

    @property
    def local(self) -> LocalLegacyGroups:
        assert isinstance(self.legacy, LocalLegacyGroups)
        return self.legacy

    def seed(
        self,
        course_id: str,
        *,
        enrolled: Mapping[str, str],
        tracks: Sequence[str],
        teamsets: Sequence[Teamset],
    ) -> None:
        with self.engine.begin() as connection:
            # A course the platform knows: its hierarchy is stored.
            SqlHierarchyStore(connection).put(course_id, COLLECTION_MIME_TYPE, collection(course_id))
        self.local.offer_tracks(course_id, [Track(course_id, mode, mode.title()) for mode in tracks])
        for each in teamsets:
            self.local.configure_teamset(each)
        at = datetime(2026, 1, 1, tzinfo=UTC)
        batch_id = f"{course_id}-batch"
        with self.engine.begin() as connection:
            if (
                connection.scalar(sa.select(course_batch.c.batchid).where(course_batch.c.batchid == batch_id))
                is None
            ):
                connection.execute(
                    course_batch.insert().values(
                        batchid=batch_id,
                        courseid=course_id,
                        name=batch_id,
                        enrollmenttype="open",
                        status=1,
                        createdfor=[],
                        mentors=[],
                        createddate=at,
                    )
                )
            if enrolled:
                connection.execute(
                    user_enrolments.insert(),
                    [
                        {
                            "userid": user_id,
                            "courseid": course_id,
                            "batchid": batch_id,
                            "active": True,
                            "enrolleddate": at,
                            "datetime": at,
                            "contentstatus": {},
                            "progress": 0,
                            "completionpercentage": 0,
                            "status": 0,
                            "certificates": [],
                            "mode": mode,
                        }
                        for user_id, mode in enrolled.items()
                    ],
                )

    def leave(self, course_id: str, user_id: str) -> None:
        """Make the user's enrolments in the course inactive (kept, as an unenrolment does)."""
        with self.engine.begin() as connection:
            connection.execute(
                user_enrolments.update()
                .where(user_enrolments.c.courseid == course_id, user_enrolments.c.userid == user_id)
                .values(active=False)
            )


class LocalOnly:
    """What only the local tables can be asked: an inactive enrolment is no enrolment; a teamset
    configured for a course the platform does not know makes no team there."""

    def test_a_teamset_of_a_course_not_stored_makes_no_team(self, world: LocalWorld) -> None:
        world.local.configure_teamset(teamset(NOWHERE, "projects"))
        refused = broken(lambda: world.legacy.create_team(NOWHERE, "projects", "Rockets"))
        assert refused.code == "course-not-found"

    def test_an_inactive_enrolment_is_not_enrolled(self, world: LocalWorld) -> None:
        seed_course(world, teamsets=[teamset(A, "projects")])
        world.leave(A, "u1")
        legacy = world.legacy
        team = legacy.create_team(A, "projects", "Rockets")
        error = broken(lambda: legacy.add_to_team(team.team_id, ["u1", "u2"]))
        assert (error.code, error.details) == ("not-enrolled", ["u1"])
        assert legacy.track_members(A, "audit") == {"u2", "u3", "u4"}
        assert broken(lambda: legacy.set_track(A, ["u1"], "verified")).code == "not-enrolled"

    def test_concurrent_additions_keep_the_rules(self, world: LocalWorld) -> None:
        users = [f"u{n}" for n in range(8)]
        seed_course(world, users=users, teamsets=[teamset(A, "quads", max_team_size=4)])
        legacy = world.legacy
        team = legacy.create_team(A, "quads", "Quad")
        others = [legacy.create_team(A, "quads", f"Other {n}") for n in range(4)]
        start = threading.Barrier(len(users))
        outcomes: dict[str, str] = {}

        def join(user_id: str, team_id: str) -> None:
            start.wait()
            try:
                legacy.add_to_team(team_id, [user_id])
                outcomes[user_id] = "added"
            except LegacyError as error:
                outcomes[user_id] = error.code

        threads = [threading.Thread(target=join, args=(u, team.team_id)) for u in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes.values()) == ["added"] * 4 + ["team-full"] * 4
        assert legacy.get_team(team.team_id).size == 4

        # One user joining four teams of the teamset at once ends in one of them.
        lone = next(u for u, outcome in outcomes.items() if outcome == "team-full")
        start = threading.Barrier(len(others))
        outcomes.clear()
        threads = [threading.Thread(target=join, args=(lone, other.team_id)) for other in others]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(legacy.get_team(other.team_id).size for other in others) == 1


class TestLocalLegacySqlite(LegacyGroupsContract, LocalOnly):
    @pytest.fixture
    def world(self, tmp_path: Path) -> Iterator[LocalWorld]:
        engine = create_engine(f"sqlite:///{tmp_path / 'legacy.sqlite3'}")
        migrate(engine)
        yield LocalWorld(engine, LocalLegacyGroups(engine))
        engine.dispose()


class TestLocalLegacyPostgres(LegacyGroupsContract, LocalOnly):
    @pytest.fixture
    def world(self, postgres_engine: sa.Engine) -> Iterator[LocalWorld]:
        truncate_all(postgres_engine)
        yield LocalWorld(postgres_engine, LocalLegacyGroups(postgres_engine))
        truncate_all(postgres_engine)
