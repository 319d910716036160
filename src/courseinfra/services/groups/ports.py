"""The ports of user groups: definitions, memberships and the facts criteria read."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from courseinfra.domain.criteria import EvaluationContext, MembershipRule, UserFacts
from courseinfra.domain.groups import UserGroup

if TYPE_CHECKING:
    pass


#: The change of a history row for a member who stays for another reason (``criteria`` to ``included``
#: when added to the include list, and back); its reason is the new one. (The column holds 8
#: characters: ``reason``, not ``reason-changed``.)
REASON_CHANGED = "reason"


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """One join, leave or reason change (:data:`REASON_CHANGED`) of a group's history."""

    id: int
    group_id: str
    user_id: str
    change: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    joined_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What a refresh or a preview found: how many join and leave, and the member count after it. A
    preview names them too (at most ``sample`` of each, sorted); a refresh need not (over every user it
    does not load them into the process). A refresh also counts the members who stay for another
    reason (``reasons_changed``; a preview does not)."""

    joined: int
    left: int
    member_count: int
    joined_ids: tuple[str, ...] = ()
    left_ids: tuple[str, ...] = ()
    reasons_changed: int = 0


class UserGroupStore(abc.ABC):
    """Group definitions and their manual overrides."""

    @abc.abstractmethod
    def add(self, group: UserGroup) -> None:
        """Store a new group; :class:`AlreadyExists` if its id, or its name in its scope, is taken."""

    @abc.abstractmethod
    def get(self, group_id: str, *, for_update: bool = False) -> UserGroup | None:
        """The group; ``for_update`` locks it until the transaction ends (refreshes and changes of one
        group are serialised)."""

    @abc.abstractmethod
    def save(self, group: UserGroup) -> None:
        """Replace the stored definition (its version was checked by the caller, under the lock)."""

    @abc.abstractmethod
    def record_refresh(self, group_id: str, member_count: int, at: datetime) -> None:
        """Keep a refresh's outcome on the group (its version is unchanged: the definition is)."""

    @abc.abstractmethod
    def delete(self, group_id: str) -> bool:
        """Delete the group, its overrides, members and history; False if it did not exist."""

    @abc.abstractmethod
    def all(self) -> list[UserGroup]:
        """Every group, by id (groups are few: hundreds, not millions)."""

    @abc.abstractmethod
    def overrides(self, group_id: str) -> tuple[frozenset[str], frozenset[str]]:
        """(include, exclude) user ids."""

    @abc.abstractmethod
    def set_overrides(self, group_id: str, include: Sequence[str], exclude: Sequence[str]) -> None:
        """Replace both lists (a user in both is excluded: the caller refuses that)."""


class Memberships(abc.ABC):
    """Stored membership, changed only by difference, with its history."""

    @abc.abstractmethod
    def refresh(
        self,
        group: UserGroup,
        rule: MembershipRule,
        context: EvaluationContext,
        *,
        reason: str,
        only_users: Sequence[str] | None = None,
    ) -> RefreshResult:
        """Evaluate ``rule`` (over every user, or only ``only_users``) and write the joins and leaves,
        each with a history row; a member admitted for another reason than the stored one (a rule's:
        ``criteria``, ``included``) gets the new reason and a :data:`REASON_CHANGED` row. A pulled
        membership (``rule.source``) keeps the reason it joined with. Return the counts."""

    @abc.abstractmethod
    def preview(
        self,
        group: UserGroup,
        rule: MembershipRule,
        context: EvaluationContext,
        *,
        sample: int = 100,
    ) -> RefreshResult:
        """What :meth:`refresh` would change, writing nothing."""

    @abc.abstractmethod
    def members(self, group_id: str, *, after: str = "", limit: int = 100) -> list[Member]: ...

    @abc.abstractmethod
    def member_ids(self, group_id: str) -> set[str]:
        """Every member's user id (what comparing a group with another set of users needs, read at once
        rather than page by page as :meth:`members`)."""

    @abc.abstractmethod
    def history(
        self, group_id: str, *, user_id: str | None = None, after_id: int = 0, limit: int = 100
    ) -> list[MembershipChange]: ...

    @abc.abstractmethod
    def is_member(self, group_id: str, user_id: str) -> bool: ...


class GroupFacts(abc.ABC):
    """What criteria read of users, for the plain Python evaluation."""

    @abc.abstractmethod
    def load(self, user_ids: Sequence[str]) -> dict[str, UserFacts]:
        """Facts of the users that exist among ``user_ids`` (directory users only)."""
