"""The SQL user directory (table ``users``)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from courseinfra.adapters.sql.criteria import in_list
from courseinfra.adapters.sql.store import aware, upsert
from courseinfra.adapters.sql.tables import users as table
from courseinfra.domain.users import User, UsernameTaken, apply_profile_changes
from courseinfra.services.users.ports import UserDirectory

#: Ids or usernames in one ``IN`` list, and users in one upsert statement.
KEY_CHUNK = 500


def _chunks(values: Sequence[str], size: int = KEY_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _utc(value: datetime) -> datetime:
    # SQLite keeps a timestamp as text without its zone and compares it as text: every timestamp is
    # written in UTC so that comparisons (logins only move forward) hold on both backends.
    return value.astimezone(UTC)


def user_from_row(row: sa.Row[Any]) -> User:
    return User(
        user_id=row.user_id,
        username=row.username,
        email=row.email,
        name=row.name,
        organisation=row.organisation,
        last_login_at=aware(row.last_login_at) if row.last_login_at else None,
        is_staff=bool(row.is_staff),
        profile=dict(row.profile),
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


class SqlUserDirectory(UserDirectory):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def upsert_many(self, users: Sequence[User], at: datetime) -> tuple[int, int]:
        if not users:
            return 0, 0
        at = _utc(at)
        # The last record of an id wins: one statement cannot touch a row twice on PostgreSQL.
        batch = {user.user_id: user for user in users}
        ids = list(batch)
        wanted: dict[str, str] = {}  # username -> the batch's user id that wants it
        conflicts: dict[str, tuple[str, str]] = {}
        for user in batch.values():
            if user.username is None:
                continue
            other = wanted.setdefault(user.username, user.user_id)
            if other != user.user_id:
                conflicts[user.user_id] = (user.username, other)
        stored_username: dict[str, str | None] = {}
        for chunk in _chunks(ids):
            query = sa.select(table.c.user_id, table.c.username).where(table.c.user_id.in_(chunk))
            stored_username.update({row.user_id: row.username for row in self.connection.execute(query)})
        for chunk in _chunks(list(wanted)):
            query = sa.select(table.c.user_id, table.c.username).where(table.c.username.in_(chunk))
            for holder, username in self.connection.execute(query):
                claimant = wanted[username]
                # A holder in the batch gives its username up (or keeps it, being the claimant).
                if holder != claimant and holder not in batch:
                    conflicts[claimant] = (username, holder)
        if conflicts:
            raise UsernameTaken(conflicts)
        # Usernames moving between users of the batch: free them first, since the unique index is
        # checked row by row as the upsert goes.
        freed = [
            user_id
            for user_id, old in stored_username.items()
            if old is not None and old != batch[user_id].username and old in wanted
        ]
        for chunk in _chunks(freed):
            self.connection.execute(
                table.update().where(table.c.user_id.in_(chunk)).values(username=None, updated_at=at)
            )
        written: set[str] = set()
        for chunk in _chunks(ids):
            written.update(self._upsert([batch[user_id] for user_id in chunk], at))
        # A freed row whose record has no username looks unchanged to the upsert, but it did change.
        written.update(freed)
        inserted = len(written - stored_username.keys())
        return inserted, len(written) - inserted

    def _upsert(self, chunk: Sequence[User], at: datetime) -> list[str]:
        """Upsert ``chunk``; return the ids of the rows inserted or changed."""
        statement = upsert(self.connection, table)
        new = statement.excluded
        later_login = sa.or_(
            sa.and_(table.c.last_login_at.is_(None), new.last_login_at.is_not(None)),
            new.last_login_at > table.c.last_login_at,
        )
        columns = ("username", "email", "name", "organisation", "is_staff", "profile")
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.user_id],
            set_={
                **{name: new[name] for name in columns},
                "last_login_at": sa.case((later_login, new.last_login_at), else_=table.c.last_login_at),
                "updated_at": new.updated_at,
            },
            # Only rows that change, so that a re-import reports them unchanged and keeps updated_at.
            where=sa.or_(later_login, *(table.c[name].is_distinct_from(new[name]) for name in columns)),
        ).returning(table.c.user_id)
        rows = [
            {
                "user_id": user.user_id,
                "username": user.username,
                "email": user.email,
                "name": user.name,
                "organisation": user.organisation,
                "last_login_at": _utc(user.last_login_at) if user.last_login_at else None,
                "is_staff": user.is_staff,
                # Keys in order: SQLite compares the JSON as text.
                "profile": dict(sorted(user.profile.items())),
                "created_at": at,
                "updated_at": at,
            }
            for user in chunk
        ]
        return [row.user_id for row in self.connection.execute(statement, rows)]

    def get(self, user_id: str) -> User | None:
        row = self.connection.execute(sa.select(table).where(table.c.user_id == user_id)).one_or_none()
        return None if row is None else user_from_row(row)

    def get_many(self, user_ids: Sequence[str], *, for_update: bool = False) -> dict[str, User]:
        if for_update and self.connection.dialect.name == "postgresql":
            # Rows that do not exist yet cannot be locked: two imports of one new user (its username
            # unique) would both insert it, and one fail on the index. Writers that merge take turns.
            self.connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtextextended('courseinfra:users:merge', 0))")
            )
        found: dict[str, User] = {}
        for chunk in _chunks(list(dict.fromkeys(user_ids))):
            query = sa.select(table).where(table.c.user_id.in_(chunk))
            # SQLite has no row locks: a writing unit of work holds the database's write lock already.
            for row in self.connection.execute(query.with_for_update() if for_update else query):
                found[row.user_id] = user_from_row(row)
        return found

    def known(self, user_ids: Collection[str]) -> set[str]:
        # One statement whatever the number of ids (one bound list): no row is read but the key's.
        query = sa.select(table.c.user_id).where(
            in_list(table.c.user_id, user_ids, self.connection.dialect.name)
        )
        return set(self.connection.execute(query).scalars())

    def list(self, *, after: str = "", limit: int = 100, organisation: str | None = None) -> list[User]:
        query = sa.select(table).where(table.c.user_id > after).order_by(table.c.user_id).limit(limit)
        if organisation is not None:
            query = query.where(table.c.organisation == organisation)
        return [user_from_row(row) for row in self.connection.execute(query)]

    def count(self) -> int:
        return int(self.connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def record_login(self, user_id: str, at: datetime) -> bool:
        at = _utc(at)
        result = self.connection.execute(
            table.update()
            .where(
                table.c.user_id == user_id,
                sa.or_(table.c.last_login_at.is_(None), table.c.last_login_at < at),
            )
            .values(last_login_at=at)
        )
        return result.rowcount == 1

    def update_profile(self, user_id: str, fields: Mapping[str, str | None], at: datetime) -> User | None:
        # FOR UPDATE (PostgreSQL; SQLite has one writer anyway): two updates of one profile must not
        # both start from the same old fields and lose one's change.
        row = self.connection.execute(
            sa.select(table).where(table.c.user_id == user_id).with_for_update()
        ).one_or_none()
        if row is None:
            return None
        user = user_from_row(row)
        profile = apply_profile_changes(user.profile, fields)
        if profile == dict(user.profile):
            return user
        at = _utc(at)
        self.connection.execute(
            table.update().where(table.c.user_id == user_id).values(profile=profile, updated_at=at)
        )
        return replace(user, profile=profile, updated_at=at)
