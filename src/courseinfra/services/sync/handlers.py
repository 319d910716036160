"""User groups linked to legacy groups (cohorts, teams, enrollment tracks): User Group -> Legacy Group.

A linked group's criteria is one legacy criterion whose config holds the legacy group's id. Every
operation on it is carried out on the legacy group and on the user group together, or on neither:

1. the user group's changes are made in an open transaction (nothing committed);
2. the legacy operations run, each pushing its undo on a stack;
3. the transaction commits.

A legacy failure rolls the transaction back and undoes the legacy operations already done (in reverse);
a failed commit undoes them too. What cannot be undone (a cohort cannot be deleted, a deleted team
cannot be restored) is either ordered last (team deletion) or recorded as a sync failure for the
operator. Every failure is kept in the sync log with the legacy error, shown by ``sync status``, and
the caller gets a clear error. Plain (unlinked) groups go to :mod:`services.groups` unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from courseinfra.domain.criteria import CriteriaRegistry, EvaluationContext, MembershipRule, Scope
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.groups import GroupFrozen, UserGroup
from courseinfra.domain.legacy import (
    LegacyError,
    LegacyKind,
    LegacyLink,
    link_of,
)
from courseinfra.services import groups
from courseinfra.services.groups import GroupDefinition, GroupNotFound, GroupView
from courseinfra.services.groups.ports import RefreshResult
from courseinfra.services.sync.kinds import RULES, UndoStack
from courseinfra.services.sync.ports import LegacyGroups, SyncFailure
from courseinfra.services.unit_of_work import UnitOfWork


class DeletePolicy(enum.StrEnum):
    """What deleting a user group linked to a legacy group that cannot be deleted does."""

    RESTRICT = "restrict"  # refuse
    DETACH = "detach"  # delete the user group, keep the legacy group and its members
    ARCHIVE = "archive"  # keep both; the user group is disabled


class DeleteRestricted(DomainError):
    code = "delete-restricted"
    kind = ErrorKind.CONFLICT


class SyncFailed(DomainError):
    """A legacy operation failed; both sides are as they were (or the log says what could not be
    undone). ``legacy_code`` is the legacy error's code."""

    code = "legacy-sync-failed"
    kind = ErrorKind.UPSTREAM

    def __init__(self, message: str, *, legacy_code: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.legacy_code = legacy_code
        self.details = list(details)


@dataclass
class LegacySync:
    """The linked-group operations, with the legacy backend and the settings they need."""

    uow_factory: Callable[[], UnitOfWork]
    legacy: LegacyGroups
    registry: CriteriaRegistry
    delete_policy: DeletePolicy = DeletePolicy.RESTRICT
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    # --- the operations of the user groups API, linked or not ------------------------------------------

    def create_group(self, group_id: str, definition: GroupDefinition) -> tuple[GroupView, RefreshResult]:
        """POST: a legacy criterion creates the legacy group (or links the one whose id it gives), adds
        the include list to it, and the user group mirrors it."""
        link = self._link_of_document(definition.criteria, definition.scope)
        if link is None:
            return groups.create_group(group_id, definition, self.uow_factory(), self.registry)
        if definition.exclude:
            raise LegacyError(
                "a linked group has no exclude list: remove users from the legacy group", code="invalid-group"
            )
        now = self.clock()
        with self._operation(group_id, "create") as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            if uow.groups.get(group_id) is not None:
                raise groups.GroupExists(f"a group with id {group_id} exists")
            link = RULES[link.kind].create_or_check(legacy, link, definition.name, undo)
            self._add_members(legacy, link, list(definition.include), undo, uow, now)
            view, _ = groups.create_group_in(
                uow,
                group_id,
                replace(definition, criteria=link.criteria(), include=(), exclude=(), frozen=False),
                self.registry,
                now=now,
                refresh=False,
            )
            result = self._pull(legacy, uow, view.group, link, now, "created")
            uow.commit()
        return groups.get_group(group_id, self.uow_factory), result

    def get_group(self, group_id: str) -> GroupView:
        """GET: a linked group's legacy group is read and the user group brought up to date first."""
        view = groups.get_group(group_id, self.uow_factory)
        link = link_of(view.group.criteria)
        if link is None or not view.group.enabled:
            return view
        self.refresh_group(group_id, "pull")
        return groups.get_group(group_id, self.uow_factory)

    def update_group(
        self, group_id: str, *, expected_version: int | None, **changes: Any
    ) -> tuple[GroupView, RefreshResult | None]:
        """PUT/PATCH: the legacy group is updated first (its name; users added to or removed from it with
        ``include`` changes), then the user group mirrors it."""
        current = groups.get_group(group_id, self.uow_factory)
        link = link_of(current.group.criteria)
        if link is None:
            return groups.update_group(
                group_id, self.uow_factory(), self.registry, expected_version=expected_version, **changes
            )
        # A PUT repeats the criteria and scope: unchanged, they are no change.
        if "scope" in changes and Scope.parse(changes["scope"]) == current.group.scope:
            del changes["scope"]
        criteria = changes.get("criteria")
        if criteria is not None and link_of(self.registry.parse(criteria, current.group.scope)) == link:
            del changes["criteria"]
        if "criteria" in changes or "scope" in changes:
            raise LegacyError(
                "a linked group's criteria and scope cannot change: delete it and link another legacy group",
                code="invalid-group",
            )
        if changes.get("exclude"):
            raise LegacyError(
                "a linked group has no exclude list: remove users from the legacy group", code="invalid-group"
            )
        now = self.clock()
        new_members = changes.pop("include", groups.UNSET)
        changes.pop("exclude", None)
        with self._operation(group_id, "update") as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            group = uow.groups.get(group_id, for_update=True)
            if group is None:
                raise GroupNotFound(f"no user group {group_id}")
            group.check_version(expected_version)
            if "name" in changes and changes["name"].strip() != group.name:
                RULES[link.kind].rename(legacy, link, changes["name"].strip(), group.name, undo)
            if new_members is not groups.UNSET:
                members = RULES[link.kind].members(legacy, link)
                wanted = set(new_members)
                self._add_members(legacy, link, sorted(wanted - members), undo, uow, now)
                self._remove_members(legacy, link, sorted(members - wanted), undo)
            updated = group.changed(
                now, **{k: v for k, v in changes.items() if k in ("name", "description", "enabled", "frozen")}
            )
            uow.groups.save(updated)
            result = (
                None if updated.frozen else self._pull(legacy, uow, updated, link, now, "definition-changed")
            )
            uow.commit()
        return groups.get_group(group_id, self.uow_factory), result

    def add_members(self, group_id: str, user_ids: Sequence[str]) -> RefreshResult:
        """Add users to a linked group: to its legacy group first. A learner moved out of another cohort
        leaves the user group linked to that cohort."""
        return self._change_members(group_id, add=user_ids)

    def remove_members(self, group_id: str, user_ids: Sequence[str]) -> RefreshResult:
        return self._change_members(group_id, remove=user_ids)

    def delete_group(self, group_id: str, *, expected_version: int | None) -> str:
        """DELETE: a team is deleted, then the user group. A cohort or a track cannot be deleted: the
        delete policy decides (restrict, detach or archive). Returns what was done."""
        current = groups.get_group(group_id, self.uow_factory)
        link = link_of(current.group.criteria)
        if link is None:
            groups.delete_group(group_id, self.uow_factory(), expected_version=expected_version)
            return "deleted"
        now = self.clock()
        deletable = RULES[link.kind].deletable
        if not deletable and self.delete_policy is DeletePolicy.RESTRICT:
            raise DeleteRestricted(
                f"group {group_id} is linked to {link.kind.value} {link.legacy_id} of course {link.course_id}, "
                "which cannot be deleted; the delete policy is restrict (detach or archive allow it)"
            )
        with self._operation(group_id, "delete") as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            group = uow.groups.get(group_id, for_update=True)
            if group is None:
                raise GroupNotFound(f"no user group {group_id}")
            group.check_version(expected_version)
            if not deletable and self.delete_policy is DeletePolicy.ARCHIVE:
                uow.groups.save(group.changed(now, enabled=False, frozen=True))
                uow.commit()
                return "archived"
            uow.groups.delete(group_id)
            if deletable:
                # Last: a deleted team cannot be restored, so nothing may fail after it but the commit.
                RULES[link.kind].delete(legacy, link, undo)
            uow.commit()
        return "deleted" if deletable else "detached"

    def refresh_group(
        self, group_id: str, trigger: str = groups.ON_DEMAND
    ) -> tuple[UserGroup, RefreshResult]:
        """Refresh: a linked group pulls its legacy group's membership; others are re-evaluated."""
        view = groups.get_group(group_id, self.uow_factory)
        link = link_of(view.group.criteria)
        if link is None:
            return groups.refresh_group(group_id, self.uow_factory(), trigger=trigger)
        now = self.clock()
        with self._operation(group_id, "refresh") as stack, self.uow_factory() as uow:
            legacy, _undo = self._bind(uow, stack)
            group = uow.groups.get(group_id, for_update=True)
            if group is None:
                raise GroupNotFound(f"no user group {group_id}")
            if group.frozen:
                raise GroupFrozen(f"group {group_id} is frozen: its membership is not refreshed")
            result = self._pull(legacy, uow, group, link, now, trigger)
            uow.commit()
        return replace(group, member_count=result.member_count, last_refreshed_at=now), result

    def refresh_all(self, trigger: str = groups.ON_DEMAND) -> dict[str, RefreshResult]:
        with self.uow_factory() as uow:
            ids = [g.group_id for g in uow.groups.all() if g.enabled and not g.frozen]
        results = {}
        for group_id in ids:
            try:
                _, results[group_id] = self.refresh_group(group_id, trigger)
            except (GroupNotFound, GroupFrozen, SyncFailed):
                continue  # deleted or frozen since the list was read; a sync failure is in the log
        return results

    def status(self) -> dict[str, Any]:
        """Every link whose two sides differ (members only in the user group, only in the legacy group,
        or a legacy group that is gone), and the sync failures not yet resolved."""
        with self.uow_factory() as uow:
            linked = [(g, link_of(g.criteria)) for g in uow.groups.all()]
            stored = {
                g.group_id: self._stored_members(uow, g.group_id) for g, link in linked if link is not None
            }
            failures = uow.sync_log.list()
        differing: list[dict[str, Any]] = []
        for group, link in linked:
            if link is None:
                continue
            try:
                legacy_members = RULES[link.kind].members(self.legacy, link)
            except LegacyError as error:
                differing.append(
                    {"group_id": group.group_id, "link": link.config(), "error": f"{error.code}: {error}"}
                )
                continue
            # Linked groups count only the users the directory knows: others cannot differ.
            with self.uow_factory() as uow:
                known = set(uow.users.get_many(sorted(legacy_members)))
            only_group = sorted(stored[group.group_id] - legacy_members)
            only_legacy = sorted(known - stored[group.group_id])
            if only_group or only_legacy:
                differing.append(
                    {
                        "group_id": group.group_id,
                        "kind": link.kind.value,
                        "link": link.config(),
                        "only_in_user_group": only_group[:100],
                        "only_in_legacy_group": only_legacy[:100],
                        "differences": len(only_group) + len(only_legacy),
                        "legacy_members_not_in_directory": len(legacy_members - known),
                    }
                )
        return {
            "links": sum(1 for _, link in linked if link is not None),
            "differing": differing,
            "failures": [failure_json(f) for f in failures],
        }

    # --- steps -----------------------------------------------------------------------------------------

    def _bind(self, uow: UnitOfWork, undo: UndoStack) -> tuple[LegacyGroups, UndoStack]:
        """The legacy groups for an operation in ``uow``: inside its transaction when they live in the
        same database (a rollback then undoes both sides; the undo stack is not used), else the
        remote system with the operation's undo stack."""
        bound = self.legacy.within(uow)
        if bound is not None:
            return bound, []
        return self.legacy, undo

    @contextmanager
    def _operation(self, group_id: str, operation: str) -> Iterator[UndoStack]:
        """Run an operation with an undo stack: on any failure the legacy steps done are undone in
        reverse, the failure is logged, and a legacy error becomes :class:`SyncFailed`."""
        undo: UndoStack = []
        try:
            yield undo
        except BaseException as error:
            not_undone = self._undo(undo)
            if isinstance(error, LegacyError):
                self._log(group_id, operation, error.code, str(error), not_undone)
                raise SyncFailed(
                    f"{operation} of group {group_id} failed on the legacy side ({error.code}: {error}); "
                    + ("nothing was changed" if not not_undone else f"not undone: {'; '.join(not_undone)}"),
                    legacy_code=error.code,
                    details=error.details,
                ) from error
            if not isinstance(error, DomainError):
                # An infrastructure failure (a commit refused, a connection lost) after legacy steps:
                # the operator must know, even when everything was rolled back or undone. A caller's
                # mistake (a version conflict, a name taken) is only the caller's error.
                self._log(group_id, operation, type(error).__name__, str(error), not_undone)
            raise

    def _undo(self, undo: UndoStack) -> list[str]:
        failed = []
        for description, action in reversed(undo):
            try:
                action()
            except Exception as error:
                failed.append(f"{description} ({type(error).__name__}: {error})")
        return failed

    def _log(self, group_id: str, operation: str, code: str, message: str, not_undone: Sequence[str]) -> None:
        try:
            self._write_log(group_id, operation, code, message, not_undone)
        except Exception:  # the database may be what failed: the caller still gets the first error
            return

    def _write_log(
        self, group_id: str, operation: str, code: str, message: str, not_undone: Sequence[str]
    ) -> None:
        with self.uow_factory() as uow:
            uow.sync_log.add(
                SyncFailure(
                    id=0,
                    at=self.clock(),
                    group_id=group_id,
                    operation=operation,
                    code=code,
                    message=message,
                    not_undone=tuple(not_undone),
                )
            )
            uow.commit()

    def _link_of_document(self, criteria: Mapping[str, Any] | None, scope: str) -> LegacyLink | None:
        if criteria is None:
            return None
        return link_of(self.registry.parse(criteria, Scope.parse(scope)))

    def _add_members(
        self,
        legacy: LegacyGroups,
        link: LegacyLink,
        user_ids: Sequence[str],
        undo: UndoStack,
        uow: UnitOfWork,
        now: datetime,
    ) -> None:
        if not user_ids:
            return
        moved = RULES[link.kind].add(legacy, link, user_ids, undo)
        if moved:
            self._follow_moves(legacy, uow, link.kind, link.course_id, moved, now)

    def _remove_members(
        self, legacy: LegacyGroups, link: LegacyLink, user_ids: Sequence[str], undo: UndoStack
    ) -> None:
        if user_ids:
            RULES[link.kind].remove(legacy, link, user_ids, undo)

        # A track's name is the course's, not the group's: nothing to rename.

    def _change_members(
        self, group_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> RefreshResult:
        view = groups.get_group(group_id, self.uow_factory)
        link = link_of(view.group.criteria)
        if link is None:
            raise LegacyError(
                f"group {group_id} is not linked to a legacy group: change its include list",
                code="invalid-group",
            )
        now = self.clock()
        with self._operation(group_id, "members") as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            group = uow.groups.get(group_id, for_update=True)
            if group is None:
                raise GroupNotFound(f"no user group {group_id}")
            self._add_members(legacy, link, list(add), undo, uow, now)
            self._remove_members(legacy, link, list(remove), undo)
            result = self._pull(legacy, uow, group, link, now, "members-changed")
            uow.commit()
        return result

    def _follow_moves(
        self,
        legacy: LegacyGroups,
        uow: UnitOfWork,
        kind: LegacyKind,
        course_id: str,
        moved: Mapping[str, str],
        now: datetime,
    ) -> None:
        """Users moved out of another cohort or track of the course (user to the legacy id they left)
        leave the user groups linked to it."""
        by_origin: dict[str, list[str]] = {}
        for user, origin in moved.items():
            by_origin.setdefault(origin, []).append(user)
        for group in uow.groups.all():
            link = link_of(group.criteria)
            if link is None or link.kind is not kind or link.course_id != course_id:
                continue
            users = by_origin.get(link.legacy_id or "")
            if users:
                locked = uow.groups.get(group.group_id, for_update=True)
                if locked is not None and not locked.frozen:
                    self._pull(legacy, uow, locked, link, now, "legacy-move", only_users=users)

    def _pull(
        self,
        legacy: LegacyGroups,
        uow: UnitOfWork,
        group: UserGroup,
        link: LegacyLink,
        now: datetime,
        trigger: str,
        only_users: Sequence[str] | None = None,
    ) -> RefreshResult:
        """Make the user group's membership the legacy group's (only ``only_users`` if given)."""
        members = frozenset(RULES[link.kind].members(legacy, link))
        source = trigger if trigger.startswith("legacy-") else f"legacy-{trigger}"
        rule = MembershipRule(None, include=members, source=source)
        context = EvaluationContext(group.scope, now.astimezone(UTC))
        result = uow.memberships.refresh(group, rule, context, reason=trigger, only_users=only_users)
        uow.groups.record_refresh(group.group_id, result.member_count, now)
        return result

    def _stored_members(self, uow: UnitOfWork, group_id: str) -> set[str]:
        members: set[str] = set()
        after = ""
        while page := uow.memberships.members(group_id, after=after, limit=5000):
            members.update(m.user_id for m in page)
            after = page[-1].user_id
        return members


def failure_json(failure: SyncFailure) -> dict[str, Any]:
    return {
        "id": failure.id,
        "at": failure.at.isoformat(),
        "group_id": failure.group_id,
        "operation": failure.operation,
        "code": failure.code,
        "message": failure.message,
        "not_undone": list(failure.not_undone),
    }
