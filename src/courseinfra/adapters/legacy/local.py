"""The legacy groups kept in local tables: cohorts, teams and enrollment tracks, with Open edX's rules.
Their courses are this platform's: a cohort or a team is created only in a course whose hierarchy is
stored (``course-not-found`` otherwise, as Open edX refuses an unknown course key).

Every operation is one transaction that reads the state the rules of ``domain.legacy`` need and writes
only if they hold. What a check depends on is locked before it is read: on PostgreSQL the cohort or team
row (``SELECT ... FOR UPDATE``), so that two additions to one team cannot both pass its size check;
SQLite has one writer, and an operation that writes takes the write lock before it reads (an UPDATE that
changes nothing), because in WAL mode a transaction whose snapshot is older than another writer's commit
cannot write at all ("database is locked", without waiting). The membership rules are also keys of the
tables (see ``tables.py``); they settle what row locks do not cover, such as one user added at once to
two teams of a teamset, each addition under its own team's lock.

Many users cost one read and one write: the user ids travel as one bound parameter (``in_list``) and
the new rows as one ``executemany``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from courseinfra.adapters.sql.criteria import in_list
from courseinfra.adapters.sql.store import SqlHierarchyStore, upsert
from courseinfra.adapters.sql.tables import (
    legacy_cohort_members,
    legacy_cohorts,
    legacy_course_modes,
    legacy_team_members,
    legacy_teams,
    legacy_teamsets,
    user_enrolments,
)
from courseinfra.domain.legacy import (
    AlreadyInTeamset,
    AssignmentType,
    Cohort,
    CohortAddResult,
    CohortNameExists,
    CohortNotFound,
    NotDeletable,
    NotEnrolled,
    Team,
    TeamNotFound,
    Teamset,
    TeamsetNotFound,
    TeamsetType,
    Track,
    UnknownCourse,
    UserNotInCohort,
    UserNotInTeam,
    check_assignment_change,
    check_cohort_name,
    check_team_additions,
    check_track,
    plan_cohort_add,
)
from courseinfra.services.sync.ports import LegacyGroups

cohorts, cohort_members = legacy_cohorts, legacy_cohort_members
teams, team_members, teamsets = legacy_teams, legacy_team_members, legacy_teamsets
modes, enrolments = legacy_course_modes, user_enrolments


def _new_id() -> str:
    return uuid.uuid4().hex


def _locked(
    connection: sa.Connection, table: sa.Table, touch: sa.Column[Any], *where: sa.ColumnElement[bool]
) -> list[sa.Row[Any]]:
    """The rows of ``table`` that match ``where``, locked until the transaction ends. ``touch`` is the
    column that SQLite's lock-taking UPDATE sets to itself (it takes the database's write lock even if
    no row matches)."""
    query = sa.select(table).where(*where)
    if connection.dialect.name == "postgresql":
        return list(connection.execute(query.with_for_update()))
    connection.execute(table.update().where(*where).values({touch: touch}))
    return list(connection.execute(query))


def _users(user_ids: Sequence[str]) -> list[str]:
    """The users once each, in the order given."""
    return list(dict.fromkeys(user_ids))


def _cohort(row: sa.Row[Any], user_count: int = 0) -> Cohort:
    return Cohort(
        cohort_id=row.cohort_id,
        course_id=row.course_id,
        name=row.name,
        assignment_type=AssignmentType(row.assignment_type),
        user_count=user_count,
    )


def _teamset(row: sa.Row[Any]) -> Teamset:
    return Teamset(
        teamset_id=row.teamset_id,
        course_id=row.course_id,
        name=row.name,
        type=TeamsetType(row.type),
        max_team_size=row.max_team_size,
    )


def _team(row: sa.Row[Any], size: int = 0) -> Team:
    return Team(
        team_id=row.team_id,
        course_id=row.course_id,
        teamset_id=row.teamset_id,
        name=row.name,
        description=row.description,
        size=size,
    )


def _known_course(connection: sa.Connection, course_id: str) -> None:
    """Refuse (:class:`UnknownCourse`) a course the platform does not know: one whose hierarchy is not
    stored, as creating a batch refuses it (Open edX refuses an unknown course key)."""
    if course_id not in SqlHierarchyStore(connection).summaries([course_id]):
        raise UnknownCourse(f"no course {course_id}: its hierarchy is not stored")


def _active_in(course_id: str) -> list[sa.ColumnElement[bool]]:
    """An enrolment of the course that is active (in any of its batches)."""
    return [enrolments.c.courseid == course_id, enrolments.c.active.is_(True)]


class LocalLegacyGroups(LegacyGroups):
    """The legacy groups in this database's tables. Operations on several users are all or nothing (one
    transaction each). Teamsets and the modes a course offers are configured with :meth:`configure_teamset`
    and :meth:`offer_tracks`, which are not part of the port: a real Open edX sets them in the course's
    settings."""

    def __init__(self, engine: sa.Engine, connection: sa.Connection | None = None) -> None:
        self.engine = engine
        self.connection = connection

    @property
    def joins_transaction(self) -> bool:
        """Bound to a unit of work's connection (``uow.legacy``), operations join its transaction, so
        that the user group and its legacy group commit or roll back together (and SQLite, one writer at
        a time, is not asked for a second write lock by another connection)."""
        return self.connection is not None

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """A transaction of its own, or the bound connection's (whose owner commits)."""
        if self.connection is not None:
            yield self.connection
            return
        with self.engine.begin() as connection:
            yield connection

    # --- cohorts ---

    def create_cohort(
        self, course_id: str, name: str, assignment_type: AssignmentType = AssignmentType.MANUAL
    ) -> Cohort:
        with self._transaction() as connection:
            _known_course(connection, course_id)
            existing = [
                _cohort(row)
                for row in _locked(connection, cohorts, cohorts.c.name, cohorts.c.course_id == course_id)
            ]
            clean = check_cohort_name(course_id, name, existing)
            cohort = Cohort(_new_id(), course_id, clean, AssignmentType(assignment_type))
            try:
                connection.execute(
                    cohorts.insert().values(
                        cohort_id=cohort.cohort_id,
                        course_id=course_id,
                        name=clean,
                        assignment_type=cohort.assignment_type.value,
                    )
                )
            except sa.exc.IntegrityError:
                # Another transaction created the name since we read (PostgreSQL locks rows, not names).
                raise CohortNameExists(f"course {course_id} already has a cohort named {clean!r}") from None
        return cohort

    def get_cohort(self, course_id: str, cohort_id: str) -> Cohort:
        with self._transaction() as connection:
            row = self._cohort_row(connection, course_id, cohort_id)
            return _cohort(row, self._cohort_size(connection, cohort_id))

    def list_cohorts(self, course_id: str) -> list[Cohort]:
        sizes = (
            sa.select(cohort_members.c.cohort_id, sa.func.count().label("size"))
            .where(cohort_members.c.course_id == course_id)
            .group_by(cohort_members.c.cohort_id)
            .subquery()
        )
        query = (
            sa.select(cohorts, sa.func.coalesce(sizes.c.size, 0).label("size"))
            .outerjoin(sizes, sizes.c.cohort_id == cohorts.c.cohort_id)
            .where(cohorts.c.course_id == course_id)
            .order_by(cohorts.c.name, cohorts.c.cohort_id)
        )
        with self._transaction() as connection:
            return [_cohort(row, row.size) for row in connection.execute(query)]

    def update_cohort(
        self,
        course_id: str,
        cohort_id: str,
        *,
        name: str | None = None,
        assignment_type: AssignmentType | None = None,
    ) -> Cohort:
        with self._transaction() as connection:
            # Every cohort of the course, locked: two transactions each making one of the last two random
            # cohorts manual must not both see the other one still random.
            course_cohorts = [
                _cohort(row)
                for row in _locked(connection, cohorts, cohorts.c.name, cohorts.c.course_id == course_id)
            ]
            cohort = next((c for c in course_cohorts if c.cohort_id == cohort_id), None)
            if cohort is None:
                raise CohortNotFound(f"course {course_id} has no cohort {cohort_id}")
            if name is not None:
                cohort = replace(
                    cohort, name=check_cohort_name(course_id, name, course_cohorts, renaming=cohort_id)
                )
            if assignment_type is not None:
                new_type = AssignmentType(assignment_type)
                check_assignment_change(cohort, new_type, course_cohorts)
                cohort = replace(cohort, assignment_type=new_type)
            try:
                connection.execute(
                    cohorts.update()
                    .where(cohorts.c.cohort_id == cohort_id)
                    .values(name=cohort.name, assignment_type=cohort.assignment_type.value)
                )
            except sa.exc.IntegrityError:
                raise CohortNameExists(
                    f"course {course_id} already has a cohort named {cohort.name!r}"
                ) from None
            return replace(cohort, user_count=self._cohort_size(connection, cohort_id))

    def delete_cohort(self, course_id: str, cohort_id: str) -> None:
        with self._transaction() as connection:
            cohort = _cohort(self._cohort_row(connection, course_id, cohort_id))
        raise NotDeletable(f"cohort {cohort.name!r} cannot be deleted: Open edX does not delete cohorts")

    def cohort_members(self, course_id: str, cohort_id: str) -> set[str]:
        with self._transaction() as connection:
            self._cohort_row(connection, course_id, cohort_id)
            return set(
                connection.scalars(
                    sa.select(cohort_members.c.user_id).where(cohort_members.c.cohort_id == cohort_id)
                )
            )

    def add_to_cohort(self, course_id: str, cohort_id: str, user_ids: Sequence[str]) -> CohortAddResult:
        users = _users(user_ids)
        dialect = self.engine.dialect.name
        with self._transaction() as connection:
            cohort = _cohort(self._cohort_row(connection, course_id, cohort_id, lock=True))
            current = {
                row.user_id: row.cohort_id
                for row in connection.execute(
                    sa.select(cohort_members.c.user_id, cohort_members.c.cohort_id).where(
                        cohort_members.c.course_id == course_id,
                        in_list(cohort_members.c.user_id, users, dialect),
                    )
                )
            }
            result = plan_cohort_add(cohort, users, current)
            rows = [
                {"course_id": course_id, "user_id": user_id, "cohort_id": cohort_id}
                for user_id in (*result.added, *result.moved)
            ]
            if rows:
                # An upsert, not an insert and an update: a user added meanwhile to another cohort of the
                # course (which we do not lock) is moved rather than failing the whole batch.
                insert = upsert(connection, cohort_members)
                connection.execute(
                    insert.on_conflict_do_update(
                        index_elements=[cohort_members.c.course_id, cohort_members.c.user_id],
                        set_={"cohort_id": insert.excluded.cohort_id},
                    ),
                    rows,
                )
        return result

    def remove_from_cohort(self, course_id: str, cohort_id: str, user_ids: Sequence[str]) -> None:
        users = _users(user_ids)
        dialect = self.engine.dialect.name
        with self._transaction() as connection:
            cohort = _cohort(self._cohort_row(connection, course_id, cohort_id, lock=True))
            in_cohort = [
                cohort_members.c.cohort_id == cohort_id,
                in_list(cohort_members.c.user_id, users, dialect),
            ]
            members = set(connection.scalars(sa.select(cohort_members.c.user_id).where(*in_cohort)))
            missing = sorted(u for u in users if u not in members)
            if missing:
                raise UserNotInCohort(
                    f"{len(missing)} users are not in cohort {cohort.name!r}", details=missing
                )
            if users:
                connection.execute(cohort_members.delete().where(*in_cohort))

    @staticmethod
    def _cohort_row(
        connection: sa.Connection, course_id: str, cohort_id: str, *, lock: bool = False
    ) -> sa.Row[Any]:
        where = [cohorts.c.cohort_id == cohort_id, cohorts.c.course_id == course_id]
        rows = (
            _locked(connection, cohorts, cohorts.c.name, *where)
            if lock
            else list(connection.execute(sa.select(cohorts).where(*where)))
        )
        if not rows:
            raise CohortNotFound(f"course {course_id} has no cohort {cohort_id}")
        return rows[0]

    @staticmethod
    def _cohort_size(connection: sa.Connection, cohort_id: str) -> int:
        count = sa.select(sa.func.count()).where(cohort_members.c.cohort_id == cohort_id)
        return connection.scalar(count) or 0

    # --- teams ---

    def configure_teamset(self, teamset: Teamset) -> None:
        """Create the teamset, or replace its name, type and maximum team size (not in the port: a real
        Open edX configures teamsets in the course's settings). Teams larger than a lowered maximum keep
        their members; they take no more."""
        if teamset.max_team_size < 1:
            raise ValueError(f"teamset {teamset.teamset_id}: max_team_size must be at least 1")
        values = {
            "name": teamset.name,
            "type": TeamsetType(teamset.type).value,
            "max_team_size": teamset.max_team_size,
        }
        with self._transaction() as connection:
            insert = upsert(connection, teamsets).values(
                course_id=teamset.course_id, teamset_id=teamset.teamset_id, **values
            )
            connection.execute(
                insert.on_conflict_do_update(
                    index_elements=[teamsets.c.course_id, teamsets.c.teamset_id], set_=values
                )
            )

    def list_teamsets(self, course_id: str) -> list[Teamset]:
        query = sa.select(teamsets).where(teamsets.c.course_id == course_id).order_by(teamsets.c.teamset_id)
        with self._transaction() as connection:
            return [_teamset(row) for row in connection.execute(query)]

    def create_team(self, course_id: str, teamset_id: str, name: str, description: str = "") -> Team:
        with self._transaction() as connection:
            _known_course(connection, course_id)
            found = _locked(
                connection,
                teamsets,
                teamsets.c.name,
                teamsets.c.course_id == course_id,
                teamsets.c.teamset_id == teamset_id,
            )
            if not found:
                raise TeamsetNotFound(f"course {course_id} has no teamset {teamset_id}")
            team = Team(_new_id(), course_id, teamset_id, name, description)
            connection.execute(
                teams.insert().values(
                    team_id=team.team_id,
                    course_id=course_id,
                    teamset_id=teamset_id,
                    name=name,
                    description=description,
                )
            )
        return team

    def get_team(self, team_id: str) -> Team:
        with self._transaction() as connection:
            row = self._team_row(connection, team_id)
            return _team(row, self._team_size(connection, team_id))

    def update_team(self, team_id: str, *, name: str | None = None, description: str | None = None) -> Team:
        with self._transaction() as connection:
            team = _team(self._team_row(connection, team_id, lock=True))
            team = replace(
                team,
                name=team.name if name is None else name,
                description=team.description if description is None else description,
            )
            connection.execute(
                teams.update()
                .where(teams.c.team_id == team_id)
                .values(name=team.name, description=team.description)
            )
            return replace(team, size=self._team_size(connection, team_id))

    def delete_team(self, team_id: str) -> None:
        with self._transaction() as connection:
            self._team_row(connection, team_id, lock=True)
            connection.execute(team_members.delete().where(team_members.c.team_id == team_id))
            connection.execute(teams.delete().where(teams.c.team_id == team_id))

    def team_members(self, team_id: str) -> set[str]:
        with self._transaction() as connection:
            self._team_row(connection, team_id)
            return set(
                connection.scalars(sa.select(team_members.c.user_id).where(team_members.c.team_id == team_id))
            )

    def add_to_team(self, team_id: str, user_ids: Sequence[str]) -> list[str]:
        users = _users(user_ids)
        dialect = self.engine.dialect.name
        with self._transaction() as connection:
            # The team's lock keeps its size still until we have added to it.
            team = _team(self._team_row(connection, team_id, lock=True))
            teamset_row = connection.execute(
                sa.select(teamsets).where(
                    teamsets.c.course_id == team.course_id, teamsets.c.teamset_id == team.teamset_id
                )
            ).first()
            if teamset_row is None:
                raise TeamsetNotFound(f"course {team.course_id} has no teamset {team.teamset_id}")
            members = connection.scalars(
                sa.select(team_members.c.user_id).where(team_members.c.team_id == team_id)
            )
            in_teamset = {
                row.user_id: row.team_id
                for row in connection.execute(
                    sa.select(team_members.c.user_id, team_members.c.team_id).where(
                        team_members.c.course_id == team.course_id,
                        team_members.c.teamset_id == team.teamset_id,
                        in_list(team_members.c.user_id, users, dialect),
                    )
                )
            }
            enrolled = connection.scalars(
                sa.select(enrolments.c.userid)
                .where(*_active_in(team.course_id), in_list(enrolments.c.userid, users, dialect))
                .distinct()
            )
            new = check_team_additions(
                team,
                _teamset(teamset_row),
                users,
                members=set(members),
                team_in_teamset=in_teamset,
                enrolled=set(enrolled),
            )
            if new:
                try:
                    connection.execute(
                        team_members.insert(),
                        [
                            {
                                "team_id": team_id,
                                "user_id": user_id,
                                "course_id": team.course_id,
                                "teamset_id": team.teamset_id,
                            }
                            for user_id in new
                        ],
                    )
                except sa.exc.IntegrityError:
                    # The teamset's unique key: a user joined another team of the teamset since we read
                    # (that team's lock is not ours).
                    raise AlreadyInTeamset(
                        f"users joined another team of teamset {team.teamset_id} meanwhile"
                    ) from None
        return new

    def remove_from_team(self, team_id: str, user_ids: Sequence[str]) -> None:
        users = _users(user_ids)
        dialect = self.engine.dialect.name
        with self._transaction() as connection:
            team = _team(self._team_row(connection, team_id, lock=True))
            in_team = [team_members.c.team_id == team_id, in_list(team_members.c.user_id, users, dialect)]
            members = set(connection.scalars(sa.select(team_members.c.user_id).where(*in_team)))
            missing = sorted(u for u in users if u not in members)
            if missing:
                raise UserNotInTeam(f"{len(missing)} users are not in team {team.name!r}", details=missing)
            if users:
                connection.execute(team_members.delete().where(*in_team))

    @staticmethod
    def _team_row(connection: sa.Connection, team_id: str, *, lock: bool = False) -> sa.Row[Any]:
        where = teams.c.team_id == team_id
        rows = (
            _locked(connection, teams, teams.c.name, where)
            if lock
            else list(connection.execute(sa.select(teams).where(where)))
        )
        if not rows:
            raise TeamNotFound(f"there is no team {team_id}")
        return rows[0]

    @staticmethod
    def _team_size(connection: sa.Connection, team_id: str) -> int:
        return connection.scalar(sa.select(sa.func.count()).where(team_members.c.team_id == team_id)) or 0

    # --- enrollment tracks ---

    def offer_tracks(self, course_id: str, tracks: Sequence[Track]) -> None:
        """Offer these modes in the course, or rename them (not in the port: a real Open edX configures
        a course's modes in its settings). Modes already offered and not listed stay: tracks cannot be
        deleted."""
        wrong = sorted(t.mode for t in tracks if t.course_id != course_id)
        if wrong:
            raise ValueError(f"tracks {wrong} are not tracks of course {course_id}")
        if not tracks:
            return
        with self._transaction() as connection:
            insert = upsert(connection, modes)
            connection.execute(
                insert.on_conflict_do_update(
                    index_elements=[modes.c.course_id, modes.c.mode], set_={"name": insert.excluded.name}
                ),
                [{"course_id": course_id, "mode": t.mode, "name": t.name} for t in tracks],
            )

    def list_tracks(self, course_id: str) -> list[Track]:
        with self._transaction() as connection:
            return self._tracks(connection, course_id)

    def track_members(self, course_id: str, mode: str) -> set[str]:
        query = sa.select(enrolments.c.userid).where(*_active_in(course_id), enrolments.c.mode == mode)
        with self._transaction() as connection:
            return set(connection.scalars(query.distinct()))

    def set_track(self, course_id: str, user_ids: Sequence[str], mode: str) -> dict[str, str]:
        """Change the mode of every enrolment of the users in the course, inactive ones included (one that
        is re-activated later must not bring back a second track). A user's previous mode is that of
        their active enrolment (the latest enrolled, should several disagree)."""
        users = _users(user_ids)
        dialect = self.engine.dialect.name
        in_course = [enrolments.c.courseid == course_id, in_list(enrolments.c.userid, users, dialect)]
        with self._transaction() as connection:
            rows = _locked(connection, enrolments, enrolments.c.mode, *in_course)
            check_track(course_id, mode, self._tracks(connection, course_id))
            previous: dict[str, str] = {}
            for row in sorted(rows, key=lambda r: (r.enrolleddate, r.batchid)):
                if row.active:
                    previous[row.userid] = row.mode
            outside = sorted(u for u in users if u not in previous)
            if outside:
                raise NotEnrolled(
                    f"{len(outside)} users are not enrolled in course {course_id}", details=outside
                )
            if users:
                connection.execute(
                    enrolments.update().where(*in_course, enrolments.c.mode != mode).values(mode=mode)
                )
        return {user_id: previous[user_id] for user_id in users}

    @staticmethod
    def _tracks(connection: sa.Connection, course_id: str) -> list[Track]:
        query = sa.select(modes).where(modes.c.course_id == course_id).order_by(modes.c.mode)
        return [Track(row.course_id, row.mode, row.name) for row in connection.execute(query)]
