"""The ports of the user directory."""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from courseinfra.domain.users import User


class UserDirectory(abc.ABC):
    """The users of the platform, one per user id, shared by course reports and user groups.

    Timestamps are aware and compared in UTC. ``updated_at`` moves when an import or a profile update
    changes a user; a login moves ``last_login_at`` only.
    """

    @abc.abstractmethod
    def upsert_many(self, users: Sequence[User], at: datetime) -> tuple[int, int]:
        """Insert new users and replace the fields of existing ones, in bulk; return (inserted, updated).

        A user whose fields are all as stored is neither (and keeps its ``updated_at``). ``created_at`` is
        kept, and ``last_login_at`` never moves back (a record without one keeps the stored one). Raises
        :class:`~courseinfra.domain.users.UsernameTaken`, before writing anything, if a username is held
        by a user id that is not in ``users`` or is given to two users of ``users``; usernames that move
        between users of ``users`` (a swap) are fine.
        """

    @abc.abstractmethod
    def get(self, user_id: str) -> User | None: ...

    @abc.abstractmethod
    def get_many(self, user_ids: Sequence[str], *, for_update: bool = False) -> dict[str, User]:
        """The users that exist among ``user_ids``, by id; ``for_update`` locks them until the
        transaction ends (an import that merges into them must not lose a concurrent change), and
        makes writers that merge take turns (a user that does not exist yet has no row to lock)."""

    @abc.abstractmethod
    def known(self, user_ids: Collection[str]) -> set[str]:
        """The ids among ``user_ids`` that the directory has: :meth:`get_many`'s keys without reading
        the users (pages compare tens of thousands of ids with it)."""

    @abc.abstractmethod
    def list(self, *, after: str = "", limit: int = 100, organisation: str | None = None) -> list[User]:
        """Users with an id above ``after``, in ascending id order (for paging), optionally of one
        organisation."""

    @abc.abstractmethod
    def count(self) -> int: ...

    @abc.abstractmethod
    def record_login(self, user_id: str, at: datetime) -> bool:
        """Move the user's ``last_login_at`` to ``at`` if it is later; return whether it moved (False for
        an unknown user, and for a login at or before the recorded one)."""

    @abc.abstractmethod
    def update_profile(self, user_id: str, fields: Mapping[str, str | None], at: datetime) -> User | None:
        """Set profile fields (None removes one) and return the user as stored after it, or None if there
        is no such user. ``updated_at`` moves to ``at`` only if the profile changed."""
