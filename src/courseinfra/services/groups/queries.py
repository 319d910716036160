"""What entry points read of user groups: definitions, members and history."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from courseinfra.domain.criteria import CriteriaRegistry, MembershipRule, Scope
from courseinfra.domain.groups import UserGroup
from courseinfra.services.groups.handlers import UNSET, GroupNotFound, GroupView, evaluation_context
from courseinfra.services.groups.ports import Member, MembershipChange, RefreshResult
from courseinfra.services.unit_of_work import UnitOfWork, UowFactory


def get_group(group_id: str, uow_factory: UowFactory) -> GroupView:
    """The group with its include and exclude lists; :class:`GroupNotFound` if there is none."""
    with uow_factory().reading() as uow:
        group = _existing(uow, group_id)
        include, exclude = uow.groups.overrides(group_id)
    return GroupView(group, include, exclude)


def list_groups(uow_factory: UowFactory, *, scope: str | None = None) -> list[UserGroup]:
    """Every group by id, or those of one scope."""
    with uow_factory().reading() as uow:
        found = uow.groups.all()
    if scope is None:
        return found
    wanted = Scope.parse(scope)
    return [group for group in found if group.scope == wanted]


def group_members(
    group_id: str, uow_factory: UowFactory, *, after: str = "", limit: int = 100
) -> list[Member]:
    """A page of members by user id, each with when and why it joined."""
    with uow_factory().reading() as uow:
        _existing(uow, group_id)
        return uow.memberships.members(group_id, after=after, limit=limit)


def group_history(
    group_id: str, uow_factory: UowFactory, *, user_id: str | None = None, after_id: int = 0, limit: int = 100
) -> list[MembershipChange]:
    """A page of joins and leaves in the order they happened (of one user, when given)."""
    with uow_factory().reading() as uow:
        _existing(uow, group_id)
        return uow.memberships.history(group_id, user_id=user_id, after_id=after_id, limit=limit)


def preview_group(
    group_id: str,
    uow_factory: UowFactory,
    registry: CriteriaRegistry,
    *,
    criteria: Mapping[str, Any] | None = UNSET,
    sample: int = 100,
    now: datetime | None = None,
) -> RefreshResult:
    """Who would join and leave on a refresh, with the stored criteria or with ``criteria``; writes
    nothing."""
    now = now or datetime.now(UTC)
    # Not a reading unit of work: the evaluation fills a temporary table (rolled back at the end).
    with uow_factory() as uow:
        group = _existing(uow, group_id)
        tree = (
            group.criteria
            if criteria is UNSET
            else (None if criteria is None else registry.parse(criteria, group.scope))
        )
        include, exclude = uow.groups.overrides(group_id)
        return uow.memberships.preview(
            group, MembershipRule(tree, include, exclude), evaluation_context(group, now), sample=sample
        )


def explain_membership(
    group_id: str,
    user_id: str,
    uow_factory: UowFactory,
    registry: CriteriaRegistry,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Why a user is (not) in a group: the stored membership, what an evaluation now decides and why,
    and every criterion's outcome with the value it read of the user beside the value it compared
    (:meth:`CriteriaRegistry.explain`; the shape is ``ExplainOut``'s)."""
    now = now or datetime.now(UTC)
    with uow_factory().reading() as uow:
        group = _existing(uow, group_id)
        include, exclude = uow.groups.overrides(group_id)
        facts = uow.group_facts.load([user_id]).get(user_id)
        member = uow.memberships.is_member(group_id, user_id)
    if facts is None:
        return {
            "group_id": group_id,
            "user_id": user_id,
            "member": member,
            "would_be_member": False,
            "reason": "unknown-user",
            "frozen": group.frozen,
            "criteria": None,
        }
    context = evaluation_context(group, now)
    admitted, reason = MembershipRule(group.criteria, include, exclude).decide(registry, facts, context)
    return {
        "group_id": group_id,
        "user_id": user_id,
        "member": member,
        "would_be_member": admitted,
        "reason": reason,
        "frozen": group.frozen,
        "criteria": None if group.criteria is None else registry.explain(group.criteria, facts, context),
    }


def _existing(uow: UnitOfWork, group_id: str) -> UserGroup:
    group = uow.groups.get(group_id)
    if group is None:
        raise GroupNotFound(f"no user group {group_id}")
    return group
