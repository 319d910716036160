"""User groups: create, read, change and delete them; refresh, preview and explain their membership;
import members; refresh on events.

A change of definition is checked against the version the caller read (``expected_version``, the API's
If-Match) under the group's lock, and refreshes the membership in the same transaction. Refreshes of a
group are serialised by that lock too, so concurrent refreshes give the membership of one evaluation or
the other, never a mixture. A frozen group is never changed by a refresh.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from courseinfra.domain.criteria import (
    CriteriaRegistry,
    EvaluationContext,
    Fact,
    MembershipRule,
    Scope,
    criteria_json,
    normalise_user_ids,
)
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.events import (
    EnrolmentChanged,
    GroupMembershipChanged,
    ProgressUpdated,
    UserDirectoryChanged,
    UserLoggedIn,
    UserProfileChanged,
)
from courseinfra.domain.groups import GroupFrozen, InvalidGroup, UserGroup
from courseinfra.services.events.ports import OutboxMessage
from courseinfra.services.groups.ports import RefreshResult
from courseinfra.services.unit_of_work import AlreadyExists, UnitOfWork

ON_DEMAND = "on-demand"
SCHEDULE = "schedule"
UNSET: Any = object()


class GroupNotFound(DomainError):
    code = "group-not-found"
    kind = ErrorKind.NOT_FOUND


class GroupExists(DomainError):
    code = "group-exists"
    kind = ErrorKind.CONFLICT


class InvalidMembersFile(DomainError):
    """A members file with bad rows; ``rows`` holds every one (line, reason)."""

    code = "invalid-members-file"

    def __init__(self, message: str, rows: Sequence[tuple[int, str]]) -> None:
        super().__init__(message)
        self.rows = list(rows)


class UnknownUsers(DomainError):
    """User ids a change names that the user directory does not have; ``unknown`` lists every one as
    (field, user id), the field being the list that named it (``include``, ``exclude``, ``add``,
    ``remove``). Its code is the members import's: an unknown user is refused alike wherever it is
    named."""

    code = InvalidMembersFile.code

    def __init__(self, unknown: Sequence[tuple[str, str]]) -> None:
        shown = "; ".join(f"{field} {user}" for field, user in unknown[:UNKNOWN_SHOWN])
        more = f" and {len(unknown) - UNKNOWN_SHOWN} more" if len(unknown) > UNKNOWN_SHOWN else ""
        users = "1 user is" if len(unknown) == 1 else f"{len(unknown)} users are"
        super().__init__(f"{users} not in the user directory: {shown}{more}; nothing was changed")
        self.unknown = list(unknown)

    def details(self) -> list[dict[str, str]]:
        """Every unknown user, as the API lists them."""
        return [
            {"field": field, "user_id": user, "reason": f"unknown user {user}"}
            for field, user in self.unknown
        ]


#: How many unknown users an error's message names (its ``unknown`` has them all).
UNKNOWN_SHOWN = 10


def check_known_users(uow: UnitOfWork, named: Mapping[str, Iterable[str]]) -> None:
    """Refuse with :class:`UnknownUsers` if any user id of ``named`` (a field to the ids it names) is not
    in the user directory."""
    fields = {field: sorted(set(ids)) for field, ids in named.items()}
    known = uow.users.get_many(sorted({user for ids in fields.values() for user in ids}))
    unknown = [(field, user) for field, ids in fields.items() for user in ids if user not in known]
    if unknown:
        raise UnknownUsers(unknown)


@dataclass(frozen=True, slots=True)
class GroupView:
    """A group with its overrides, as readers see it."""

    group: UserGroup
    include: frozenset[str]
    exclude: frozenset[str]


@dataclass(frozen=True, slots=True)
class GroupDefinition:
    """What a caller gives to create or replace a group. ``criteria`` is the JSON tree (or None)."""

    name: str
    scope: str
    description: str = ""
    enabled: bool = True
    frozen: bool = False
    criteria: Mapping[str, Any] | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()


def _now() -> datetime:
    return datetime.now(UTC)


def evaluation_context(group: UserGroup, now: datetime) -> EvaluationContext:
    return EvaluationContext(group.scope, now.astimezone(UTC))


def _locked(uow: UnitOfWork, group_id: str) -> UserGroup:
    group = uow.groups.get(group_id, for_update=True)
    if group is None:
        raise GroupNotFound(f"no user group {group_id}")
    return group


def _overrides(include: Sequence[str], exclude: Sequence[str]) -> tuple[list[str], list[str]]:
    inc, exc = normalise_user_ids(include), normalise_user_ids(exclude)
    both = sorted(set(inc) & set(exc))
    if both:
        raise InvalidGroup(f"users both included and excluded: {', '.join(both[:10])}")
    return inc, exc


def _refresh(
    uow: UnitOfWork, group: UserGroup, trigger: str, now: datetime, only_users: Sequence[str] | None = None
) -> tuple[UserGroup, RefreshResult]:
    """Refresh a locked group in ``uow``'s transaction; record the change event if anything changed."""
    now = now.astimezone(UTC)  # stored times are UTC (SQLite keeps them as naive text)
    include, exclude = uow.groups.overrides(group.group_id)
    rule = MembershipRule(group.criteria, include, exclude)
    result = uow.memberships.refresh(
        group, rule, evaluation_context(group, now), reason=trigger, only_users=only_users
    )
    refreshed = replace(group, member_count=result.member_count, last_refreshed_at=now)
    record_refresh(uow, group.group_id, result, trigger, now)
    return refreshed, result


def record_refresh(
    uow: UnitOfWork, group_id: str, result: RefreshResult, trigger: str, now: datetime
) -> None:
    """Keep a refresh's member count and time, and record the change event if anyone joined or left."""
    uow.groups.record_refresh(group_id, result.member_count, now)
    if result.joined or result.left:
        uow.record(
            GroupMembershipChanged(
                group_id=group_id, joined=result.joined, left=result.left, trigger=trigger, occurred_at=now
            )
        )


def create_group(
    group_id: str,
    definition: GroupDefinition,
    uow: UnitOfWork,
    registry: CriteriaRegistry,
    *,
    now: datetime | None = None,
) -> tuple[GroupView, RefreshResult]:
    """Create a group and compute its membership (none is computed for a frozen group). Every user of
    the include and exclude lists must be in the user directory (:class:`UnknownUsers`)."""
    with uow:
        view, result = create_group_in(uow, group_id, definition, registry, now=now or _now())
        uow.commit()
    return view, result


def create_group_in(
    uow: UnitOfWork,
    group_id: str,
    definition: GroupDefinition,
    registry: CriteriaRegistry,
    *,
    now: datetime,
    refresh: bool = True,
) -> tuple[GroupView, RefreshResult]:
    """:func:`create_group` in ``uow``'s open transaction, uncommitted (``refresh`` False: no
    membership is computed; the caller fills it)."""
    scope = Scope.parse(definition.scope)
    criteria = None if definition.criteria is None else registry.parse(definition.criteria, scope)
    include, exclude = _overrides(definition.include, definition.exclude)
    check_known_users(uow, {"include": include, "exclude": exclude})
    group = UserGroup(
        group_id=group_id,
        name=definition.name.strip(),
        scope=scope,
        created_at=now,
        updated_at=now,
        description=definition.description,
        enabled=definition.enabled,
        frozen=definition.frozen,
        criteria=criteria,
    )
    try:
        uow.groups.add(group)
    except AlreadyExists as error:
        raise GroupExists(str(error)) from None
    uow.groups.set_overrides(group_id, include, exclude)
    uow.note("group.create", f"group:{group_id}", scope=str(scope), criteria=criteria is not None)
    result = RefreshResult(0, 0, 0)
    if refresh and not group.frozen:
        group, result = _refresh(uow, group, "created", now)
    return GroupView(group, frozenset(include), frozenset(exclude)), result


def update_group(
    group_id: str,
    uow: UnitOfWork,
    registry: CriteriaRegistry,
    *,
    expected_version: int | None,
    name: str = UNSET,
    scope: str = UNSET,
    description: str = UNSET,
    enabled: bool = UNSET,
    frozen: bool = UNSET,
    criteria: Mapping[str, Any] | None = UNSET,
    include: Sequence[str] = UNSET,
    exclude: Sequence[str] = UNSET,
    now: datetime | None = None,
) -> tuple[GroupView, RefreshResult | None]:
    """Change the fields given (a PATCH; a PUT gives them all); refresh the membership when the rules or
    overrides changed and the group is not frozen. Refused with ``version-conflict`` if the group is
    not at ``expected_version``, and with :class:`UnknownUsers` if a user it adds to the include or
    exclude list is not in the user directory."""
    now = now or _now()
    with uow:
        group = _locked(uow, group_id)
        group.check_version(expected_version)
        current_include, current_exclude = uow.groups.overrides(group_id)
        new_scope = group.scope if scope is UNSET else Scope.parse(scope)
        changes: dict[str, Any] = {}
        if name is not UNSET:
            changes["name"] = name.strip()
        if scope is not UNSET:
            changes["scope"] = new_scope
        if description is not UNSET:
            changes["description"] = description
        if enabled is not UNSET:
            changes["enabled"] = enabled
        if frozen is not UNSET:
            changes["frozen"] = frozen
        if criteria is not UNSET:
            changes["criteria"] = None if criteria is None else registry.parse(criteria, new_scope)
        elif scope is not UNSET and group.criteria is not None:
            # The criteria must hold in the new scope (a course criterion without a course, say).
            changes["criteria"] = registry.parse(criteria_json(group.criteria), new_scope)
        new_include, new_exclude = _overrides(
            sorted(current_include) if include is UNSET else include,
            sorted(current_exclude) if exclude is UNSET else exclude,
        )
        # Only what differs is a change: a PATCH that changes nothing keeps the version (and its ETag).
        changes = {field: value for field, value in changes.items() if getattr(group, field) != value}
        overrides_changed = (set(new_include), set(new_exclude)) != (
            set(current_include),
            set(current_exclude),
        )
        if not changes and not overrides_changed:
            return GroupView(group, frozenset(current_include), frozenset(current_exclude)), None
        # Only the users the change adds to a list: one kept from before the rule stays.
        check_known_users(
            uow,
            {"include": set(new_include) - current_include, "exclude": set(new_exclude) - current_exclude},
        )
        updated = group.changed(now, **changes)
        try:
            uow.groups.save(updated)
        except AlreadyExists as error:
            raise GroupExists(str(error)) from None
        if overrides_changed:
            uow.groups.set_overrides(group_id, new_include, new_exclude)
        fields = sorted([*changes, *(["include", "exclude"] if overrides_changed else [])])
        uow.note("group.update", f"group:{group_id}", fields=fields, version=updated.version)
        result = None
        rules_changed = overrides_changed or "criteria" in changes or "scope" in changes
        if not updated.frozen and (rules_changed or ("frozen" in changes and group.frozen)):
            updated, result = _refresh(uow, updated, "definition-changed", now)
        uow.commit()
    return GroupView(updated, frozenset(new_include), frozenset(new_exclude)), result


def delete_group(group_id: str, uow: UnitOfWork, *, expected_version: int | None) -> None:
    with uow:
        group = _locked(uow, group_id)
        group.check_version(expected_version)
        uow.groups.delete(group_id)
        uow.note("group.delete", f"group:{group_id}", version=group.version)
        uow.commit()


def refresh_group(
    group_id: str,
    uow: UnitOfWork,
    *,
    trigger: str = ON_DEMAND,
    only_users: Sequence[str] | None = None,
    now: datetime | None = None,
) -> tuple[UserGroup, RefreshResult]:
    """Re-evaluate a group (only ``only_users`` if given) and apply the difference. A frozen group is
    refused with ``group-frozen``."""
    now = now or _now()
    with uow:
        group = _locked(uow, group_id)
        if group.frozen:
            raise GroupFrozen(f"group {group_id} is frozen: its membership is not refreshed")
        refreshed, result = _refresh(uow, group, trigger, now, only_users)
        if trigger == ON_DEMAND:
            uow.note("group.refresh", f"group:{group_id}", joined=result.joined, left=result.left)
        uow.commit()
    return refreshed, result


def refresh_all(
    uow_factory: Callable[[], UnitOfWork], *, trigger: str = ON_DEMAND, now: datetime | None = None
) -> dict[str, RefreshResult]:
    """Refresh every enabled, unfrozen group, one transaction each."""
    with uow_factory() as uow:
        groups = [g.group_id for g in uow.groups.all() if g.enabled and not g.frozen]
    results = {}
    for group_id in groups:
        try:
            _, results[group_id] = refresh_group(group_id, uow_factory(), trigger=trigger, now=now)
        except (GroupNotFound, GroupFrozen):
            continue  # deleted or frozen since the list was read
    return results


@dataclass(frozen=True, slots=True)
class MembersFile:
    """The rows of a members file that parsed (line, user id, ``include`` or ``exclude``), and the bad
    ones (line, reason)."""

    rows: tuple[tuple[int, str, str], ...]
    bad: tuple[tuple[int, str], ...]

    @property
    def included(self) -> set[str]:
        return {user for _, user, action in self.rows if action == "include"}

    @property
    def excluded(self) -> set[str]:
        return {user for _, user, action in self.rows if action == "exclude"}

    def check_known(self, uow: UnitOfWork) -> None:
        """:class:`InvalidMembersFile` listing every bad row, an unknown user among them, if any."""
        known = uow.users.get_many([user_id for _, user_id, _ in self.rows])
        bad = [
            *self.bad,
            *((line, f"unknown user {user}") for line, user, _ in self.rows if user not in known),
        ]
        if bad:
            bad.sort()
            raise InvalidMembersFile(f"{len(bad)} bad rows; nothing was imported", bad)


def read_members_file(text: str) -> MembersFile:
    """The rows of a CSV members file: a ``user_id`` column and an optional ``action`` column
    (``include`` by default, or ``exclude``); an empty id, a bad action or a repeated user is a bad row.
    :class:`InvalidMembersFile` at once without a ``user_id`` column."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "user_id" not in [name.strip() for name in reader.fieldnames]:
        raise InvalidMembersFile("line 1: the header must have a user_id column", [(1, "no user_id column")])
    rows: list[tuple[int, str, str]] = []
    bad: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        values = {(k or "").strip(): (v or "").strip() for k, v in record.items() if isinstance(v, str)}
        user_id, action = values.get("user_id", ""), values.get("action", "") or "include"
        if not user_id:
            bad.append((line, "user_id is empty"))
            continue
        if action not in ("include", "exclude"):
            bad.append((line, f"action {action!r}: expected include or exclude"))
            continue
        if user_id in seen:
            bad.append((line, f"user {user_id} is already on line {seen[user_id]}"))
            continue
        seen[user_id] = line
        rows.append((line, user_id, action))
    return MembersFile(tuple(rows), tuple(bad))


def import_members(
    group_id: str,
    text: str,
    uow: UnitOfWork,
    *,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> tuple[GroupView, RefreshResult | None]:
    """Add the users of a members file (:func:`read_members_file`) to the group's include or exclude
    list and refresh. Every row is checked first (a known user among them); with any bad row nothing is
    applied and :class:`InvalidMembersFile` lists them all with their line numbers."""
    now = now or _now()
    members_file = read_members_file(text)
    with uow:
        group = _locked(uow, group_id)
        group.check_version(expected_version)
        members_file.check_known(uow)
        include, exclude = uow.groups.overrides(group_id)
        new_include = (set(include) | members_file.included) - members_file.excluded
        new_exclude = (set(exclude) - members_file.included) | members_file.excluded
        uow.groups.set_overrides(group_id, sorted(new_include), sorted(new_exclude))
        updated = group.changed(now)
        uow.groups.save(updated)
        uow.note(
            "group.members-import",
            f"group:{group_id}",
            included=len(members_file.included),
            excluded=len(members_file.excluded),
        )
        result = None
        if not updated.frozen:
            updated, result = _refresh(uow, updated, "import", now)
        uow.commit()
    return GroupView(updated, frozenset(new_include), frozenset(new_exclude)), result


# --- refresh on events ---------------------------------------------------------------------------------


def facts_changed_by(message: OutboxMessage) -> tuple[frozenset[Fact], list[str]]:
    """The facts an event changes and the users it concerns (none for other events)."""
    payload = message.payload
    if message.event_type == UserLoggedIn.event_type:
        return frozenset({Fact.LOGIN}), [str(payload["user_id"])]
    if message.event_type == UserProfileChanged.event_type:
        return frozenset({Fact.PROFILE}), [str(payload["user_id"])]
    if message.event_type == UserDirectoryChanged.event_type:
        return frozenset({Fact.DIRECTORY}), [str(payload["user_id"])]
    if message.event_type == EnrolmentChanged.event_type:
        return frozenset({Fact.ENROLMENT}), [str(payload["user_id"])]
    if message.event_type == ProgressUpdated.event_type:
        return frozenset({Fact.PROGRESS}), [str(user) for user in payload["user_ids"]]
    return frozenset(), []


GROUP_TRIGGERS = (
    UserLoggedIn.event_type,
    UserProfileChanged.event_type,
    UserDirectoryChanged.event_type,
    EnrolmentChanged.event_type,
    ProgressUpdated.event_type,
)


def refresh_on_event(
    message: OutboxMessage, uow_factory: Callable[[], UnitOfWork], registry: CriteriaRegistry
) -> dict[str, RefreshResult]:
    """Re-evaluate only the users an event concerns, against only the enabled, unfrozen groups whose
    criteria read a fact the event changes; one transaction for all of them."""
    changed, user_ids = facts_changed_by(message)
    if not changed or not user_ids:
        return {}
    trigger = f"event:{message.event_type}"
    now = _now()
    results = {}
    with uow_factory() as uow:
        for listed in uow.groups.all():
            if not listed.enabled or listed.frozen or listed.criteria is None:
                continue
            if not registry.facts_of(listed.criteria) & changed:
                continue
            group = uow.groups.get(listed.group_id, for_update=True)
            if group is None or group.frozen or not group.enabled:
                continue  # deleted, frozen or disabled since the list was read
            _, results[group.group_id] = _refresh(uow, group, trigger, now, user_ids)
        uow.commit()
    return results


def group_refresh_handler(
    uow_factory: Callable[[], UnitOfWork], registry: CriteriaRegistry
) -> Callable[[OutboxMessage], None]:
    def handle(message: OutboxMessage) -> None:
        refresh_on_event(message, uow_factory, registry)

    return handle
