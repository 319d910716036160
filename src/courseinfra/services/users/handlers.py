"""The user directory's use cases: import users from a file, record logins, update profiles."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.events import UserDirectoryChanged, UserLoggedIn, UserProfileChanged
from courseinfra.domain.users import (
    RecordFormat,
    RowError,
    User,
    UsernameTaken,
    check_profile_changes,
    parse_records_with_lines,
    profile_diff,
)
from courseinfra.services.unit_of_work import UnitOfWork

#: The directory fields criteria read (``staff_status``, organisation scopes): a change of one refreshes
#: the groups that read the directory.
DIRECTORY_FACTS = ("is_staff", "organisation")

#: The user ids a trail entry of an import names; the count of the others follows them.
TRAIL_IDS = 100


class UserNotFound(DomainError):
    code = "user-not-found"
    kind = ErrorKind.NOT_FOUND


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: nothing at all when ``errors`` is not empty."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: tuple[RowError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def import_users(
    records_text: str,
    fmt: RecordFormat,
    uow_factory: Callable[[], UnitOfWork],
    *,
    at: datetime | None = None,
    replace_records: bool = False,
) -> ImportReport:
    """Insert or update the users of an import file, all or nothing. A record updates only the fields
    it gives (a column or key present and not empty) and sets the profile fields it gives; the stored
    others are kept. With ``replace_records``, each record replaces the stored user whole (a field it
    leaves out is cleared, its profile is the record's).

    Every row is checked first; if any is bad (including a username another user holds), the report
    lists every bad row and nothing is written. Otherwise the users are upserted in one transaction, and
    a profile changed event is recorded for each user whose profile changed (a new user with a profile
    included), and a directory changed event for each whose staff flag or organisation changed (a new
    user included), so that user groups follow imports as they follow profile updates. An import records no
    login events: its ``last_login`` is history, not a login happening now.
    """
    at = at or datetime.now(UTC)
    numbered, errors = parse_records_with_lines(records_text, fmt)
    if errors:
        return ImportReport(errors=tuple(errors))
    line_of = {record.user.user_id: record.line for record in numbered}
    with uow_factory() as uow:
        before = uow.users.get_many(list(line_of), for_update=True)
        users = [
            record.user if replace_records else record.merged_into(before.get(record.user.user_id))
            for record in numbered
        ]
        try:
            inserted, updated = uow.users.upsert_many(users, at)
        except UsernameTaken as taken:
            return ImportReport(
                errors=tuple(
                    RowError(
                        line_of[user_id],
                        taken.code,
                        f"username {username} is held by user {holder}",
                    )
                    for user_id, (username, holder) in sorted(
                        taken.conflicts.items(), key=lambda c: line_of[c[0]]
                    )
                )
            )
        for user in users:
            old = before.get(user.user_id)
            directory = {
                name: getattr(user, name)
                for name in DIRECTORY_FACTS
                if old is None or getattr(old, name) != getattr(user, name)
            }
            if directory:
                uow.record(UserDirectoryChanged(user_id=user.user_id, changed=directory, occurred_at=at))
            changed = profile_diff(old.profile if old else {}, user.profile)
            if changed:
                uow.record(
                    UserProfileChanged(
                        user_id=user.user_id, changed=changed, profile=dict(user.profile), occurred_at=at
                    )
                )
        ids = [user.user_id for user in users]
        uow.note(
            "users.import",
            "users",
            inserted=inserted,
            updated=updated,
            replace=replace_records,
            users=ids[:TRAIL_IDS],
            more=max(0, len(ids) - TRAIL_IDS),
        )
        uow.commit(at)
    return ImportReport(inserted, updated, len(users) - inserted - updated)


def record_login(user_id: str, uow: UnitOfWork, at: datetime | None = None) -> tuple[User, bool]:
    """Record that a user logged in at ``at`` (now by default); return the user and whether their
    ``last_login_at`` moved. Only a later login moves it, and only then is a login event recorded: a
    login reported twice or late is harmless."""
    at = at or datetime.now(UTC)
    with uow:
        moved = uow.users.record_login(user_id, at)
        user = uow.users.get(user_id)
        if user is None:
            raise UserNotFound(f"user {user_id} does not exist")
        uow.note("user.login", f"user:{user_id}", at=at.astimezone(UTC).isoformat(), moved=moved)
        if moved:
            uow.record(
                UserLoggedIn(user_id=user_id, logged_in_at=at.astimezone(UTC).isoformat(), occurred_at=at)
            )
        uow.commit()
    return user, moved


def update_profile(
    user_id: str, fields: Mapping[str, Any], uow: UnitOfWork, at: datetime | None = None
) -> User:
    """Set profile fields (a None value removes one); return the user as stored. A profile changed event
    is recorded when the profile changed."""
    changes = check_profile_changes(fields)
    at = at or datetime.now(UTC)
    with uow:
        # Read without a lock: under two concurrent updates, ``changed`` may name a field the other one
        # set too; ``profile`` in the event is what was stored either way.
        before = uow.users.get(user_id)
        if before is None:
            raise UserNotFound(f"user {user_id} does not exist")
        after = uow.users.update_profile(user_id, changes, at)
        if after is None:
            raise UserNotFound(f"user {user_id} does not exist")
        changed = profile_diff(before.profile, after.profile)
        uow.note("user.profile", f"user:{user_id}", fields=sorted(changes))
        if changed:
            uow.record(
                UserProfileChanged(
                    user_id=user_id, changed=changed, profile=dict(after.profile), occurred_at=at
                )
            )
        uow.commit()
    return after
