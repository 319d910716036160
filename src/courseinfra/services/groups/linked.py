"""User groups linked to legacy groups (cohorts, teams, enrollment tracks): User Group -> Legacy Group.

A linked group's criteria is one legacy criterion whose config holds the legacy group's id. Every
operation on it is carried out on the legacy group and on the user group together, or on neither:

1. the user group's changes are made in an open transaction (nothing committed);
2. the legacy operations run, each pushing its undo on a stack;
3. the transaction commits.

A legacy failure rolls the transaction back and undoes the legacy operations already done (in reverse);
a failed commit undoes them too. Legacy groups in the unit of work's own database join its transaction
instead (``LegacyGroups.joins_transaction``): a rollback undoes both sides and the stack stays empty.
What cannot be undone (a cohort cannot be deleted, a deleted team cannot be restored) is either ordered
last (team deletion) or recorded as a sync failure for the operator. Every failure is kept in the sync
log with the legacy error, and the caller gets a clear error.

Reads (a preview, an explanation) read the legacy group and write nothing, not even the log.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from courseinfra.domain.criteria import CriteriaRegistry, EvaluationContext, MembershipRule, criteria_json
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.groups import GroupFrozen, UserGroup
from courseinfra.domain.legacy import (
    Authority,
    LegacyAuthoritative,
    LegacyError,
    LegacyKind,
    LegacyLink,
    link_of,
)
from courseinfra.services.groups.echoes import DEFAULT_ECHO_TTL, expect_echoes
from courseinfra.services.groups.handlers import (
    UNSET,
    GroupDefinition,
    GroupExists,
    GroupNotFound,
    MembersFile,
    check_known_users,
    create_group_in,
    record_refresh,
)
from courseinfra.services.groups.ports import RefreshResult
from courseinfra.services.sync.kinds import RULES, UndoStack
from courseinfra.services.sync.ports import DriftSide, LegacyGroups, SyncFailure
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
    undone). ``legacy_code`` is the legacy error's code, and the kind is the legacy error's: a rule the
    legacy system enforces (a full team, a learner not enrolled) is the caller's error, an unavailable
    legacy system an upstream one."""

    code = "legacy-sync-failed"
    kind = ErrorKind.UPSTREAM

    def __init__(
        self, message: str, *, legacy_code: str, details: Sequence[str] = (), kind: ErrorKind | None = None
    ) -> None:
        super().__init__(message, kind=kind)
        self.legacy_code = legacy_code
        self.details = list(details)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What reconciling a link found and did: ``action`` is ``pull`` (the user group changes),
    ``push`` (the legacy group changes) or ``skipped`` (``skipped`` says why); ``added`` and
    ``removed`` count the users the changed side gains and loses; ``not_fixed`` the users a push
    cannot remove (a track is left only by moving to another); ``fixed`` False when nothing was written
    (``dry_run``, or a failure: ``error``)."""

    group_id: str
    link: LegacyLink
    action: str
    only_in_legacy_group: int = 0
    only_in_user_group: int = 0
    sample_only_in_legacy_group: tuple[str, ...] = ()
    sample_only_in_user_group: tuple[str, ...] = ()
    added: int = 0
    removed: int = 0
    not_fixed: tuple[str, ...] = ()
    dry_run: bool = False
    fixed: bool = False
    skipped: str | None = None
    error: str | None = None

    @property
    def drift(self) -> int:
        return self.only_in_legacy_group + self.only_in_user_group


@dataclass(frozen=True, slots=True)
class _Comparison:
    reconciled: Reconciled
    only_in_legacy: list[str]
    only_in_group: list[str]
    removable: list[str]

    @property
    def action(self) -> str:
        return self.reconciled.action


def check_editable(group_id: str, link: LegacyLink, what: str) -> None:
    """Refuse a membership edit or a rename through courseinfra of a group whose link names the legacy
    group as the authority (:class:`LegacyAuthoritative`)."""
    if link.authority is Authority.LEGACY:
        raise LegacyAuthoritative(
            f"group {group_id} mirrors {link.kind.value} {link.legacy_id} of course {link.course_id}, "
            f"whose link names the legacy group as the authority: {what} is done in the legacy system, "
            "and comes back by Open edX events and reconciliation (or change the link's authority)"
        )


def no_exclude_list() -> LegacyError:
    return LegacyError(
        "a linked group has no exclude list: remove users from the legacy group", code="invalid-group"
    )


@dataclass
class LinkedGroups:
    """The operations on linked groups, each given the group's link (read by the caller)."""

    uow_factory: Callable[[], UnitOfWork]
    registry: CriteriaRegistry
    delete_policy: DeletePolicy = DeletePolicy.RESTRICT
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: How long the echo of a legacy write is expected (ADR 0022).
    echo_ttl: timedelta = DEFAULT_ECHO_TTL

    def create(self, group_id: str, definition: GroupDefinition, link: LegacyLink) -> RefreshResult:
        """A legacy criterion creates the legacy group (or links the one whose id it gives), adds the
        include list to it, and the user group mirrors it. Every included user must be in the user
        directory (:class:`UnknownUsers`, before any legacy step)."""
        if definition.exclude:
            raise no_exclude_list()
        if definition.include:
            check_editable(group_id, link, "adding members")
        now = self.clock()
        with self._operation(group_id, "create") as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            if uow.groups.get(group_id) is not None:
                raise GroupExists(f"a group with id {group_id} exists")
            # Before any legacy step: a pull counts directory users only, so an unknown user added to
            # the legacy group would never be a member.
            check_known_users(uow, {"include": definition.include})
            link = RULES[link.kind].create_or_check(legacy, link, definition.name, undo)
            self._add_members(legacy, link, list(definition.include), undo, uow, now)
            view, _ = create_group_in(
                uow,
                group_id,
                replace(definition, criteria=link.criteria(), include=(), exclude=(), frozen=False),
                self.registry,
                now=now,
                refresh=False,
            )
            result = self._pull(legacy, uow, view.group, link, now, "created")
            self._expect(uow, legacy, group_id, link, definition.include, (), now)
            uow.commit()
        return result

    def update(
        self, group_id: str, link: LegacyLink, *, expected_version: int | None, changes: Mapping[str, Any]
    ) -> RefreshResult | None:
        """The legacy group is updated first (its name; users added to or removed from it by an
        ``include`` change), then the user group mirrors it. ``changes`` leave scope alone; a
        ``criteria`` change (parsed) only changes the link's authority or follow_enrolment. A user the
        include list adds must be in the user directory (:class:`UnknownUsers`). Under the ``legacy``
        authority (``link``'s, the stored one) a rename or an include list that changes the membership
        is refused (:class:`LegacyAuthoritative`)."""
        if changes.get("exclude"):
            raise no_exclude_list()
        now = self.clock()
        new_members = changes.get("include", UNSET)
        with self._operation(group_id, "update") as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            group = self._locked(uow, group_id)
            group.check_version(expected_version)
            if new_members is not UNSET:
                members = RULES[link.kind].members(legacy, link)
                wanted = set(new_members)
                if wanted != members:
                    check_editable(group_id, link, "changing members")
                check_known_users(uow, {"include": wanted - members})  # before the first legacy write
            renamed = "name" in changes and changes["name"].strip() != group.name
            if renamed:
                check_editable(group_id, link, "a rename")
                RULES[link.kind].rename(legacy, link, changes["name"].strip(), group.name, undo)
            if new_members is not UNSET:
                added, removed = sorted(wanted - members), sorted(members - wanted)
                self._add_members(legacy, link, added, undo, uow, now)
                self._remove_members(legacy, link, removed, undo)
                self._expect(uow, legacy, group_id, link, added, removed, now)
            kept = ("name", "description", "enabled", "frozen", "criteria")
            updated = group.changed(now, **{k: v for k, v in changes.items() if k in kept})
            uow.groups.save(updated)
            uow.note("group.update", f"group:{group_id}", fields=sorted(changes), version=updated.version)
            result = (
                None if updated.frozen else self._pull(legacy, uow, updated, link, now, "definition-changed")
            )
            uow.commit()
        return result

    def delete(self, group_id: str, link: LegacyLink, *, expected_version: int | None) -> str:
        """A team is deleted, then the user group. A cohort or a track cannot be deleted: the delete
        policy decides (restrict, detach or archive). Returns what was done."""
        now = self.clock()
        deletable = RULES[link.kind].deletable
        if not deletable and self.delete_policy is DeletePolicy.RESTRICT:
            raise DeleteRestricted(
                f"group {group_id} is linked to {link.kind.value} {link.legacy_id} of course {link.course_id}, "
                "which cannot be deleted; the delete policy is restrict (detach or archive allow it)"
            )
        with self._operation(group_id, "delete") as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            group = self._locked(uow, group_id)
            group.check_version(expected_version)
            if not deletable and self.delete_policy is DeletePolicy.ARCHIVE:
                uow.groups.save(group.changed(now, enabled=False, frozen=True))
                uow.note("group.delete", f"group:{group_id}", outcome="archived")
                uow.commit()
                return "archived"
            uow.groups.delete(group_id)
            uow.note("group.delete", f"group:{group_id}", outcome="deleted" if deletable else "detached")
            if deletable:
                # Last: a deleted team cannot be restored, so nothing may fail after it but the commit.
                RULES[link.kind].delete(legacy, link, undo)
            uow.commit()
        return "deleted" if deletable else "detached"

    def refresh(self, group_id: str, link: LegacyLink, trigger: str) -> tuple[UserGroup, RefreshResult]:
        """Pull the legacy group's membership."""
        now = self.clock()
        with self._operation(group_id, "refresh") as stack, self.uow_factory() as uow:
            legacy, _undo = self._bind(uow, stack)
            group = self._locked(uow, group_id)
            if group.frozen:
                raise GroupFrozen(f"group {group_id} is frozen: its membership is not refreshed")
            result = self._pull(legacy, uow, group, link, now, trigger)
            uow.commit()
        return replace(group, member_count=result.member_count, last_refreshed_at=now), result

    def pull_users(
        self, group_id: str, link: LegacyLink, users: Sequence[str] | None, trigger: str
    ) -> RefreshResult | None:
        """Make the membership the legacy group's for ``users`` only (the whole group when None): what an
        Open edX event triggers (ADR 0022). State-based: when both sides agree nothing is written. A
        frozen group is left as it is (None)."""
        now = self.clock()
        with self._operation(group_id, "event-pull") as stack, self.uow_factory() as uow:
            legacy, _undo = self._bind(uow, stack)
            group = self._locked(uow, group_id)
            if group.frozen:
                return None
            result = self._pull(legacy, uow, group, link, now, trigger, only_users=users)
            uow.commit()
        return result

    def record_drift(self, group_id: str, link: LegacyLink, users: Sequence[str] | None, origin: str) -> int:
        """For a link whose user group is the authority: keep, as drift, each of ``users`` (every user
        of either side when None) whose legacy membership differs from the stored one, and forget the
        drift of those on whom both sides agree; nothing is pulled (ADR 0022). The legacy state is read,
        never the event's content. Returns how many users drift."""
        now = self.clock()
        with self._operation(group_id, "drift") as stack, self.uow_factory() as uow:
            legacy, _undo = self._bind(uow, stack)
            self._locked(uow, group_id)
            in_legacy, only_group = self._sides(uow, legacy, group_id, link, users)
            sides = dict.fromkeys(in_legacy, DriftSide.ONLY_IN_LEGACY_GROUP)
            sides.update(dict.fromkeys(only_group, DriftSide.ONLY_IN_USER_GROUP))
            uow.drift.clear(group_id, users)
            uow.drift.record(group_id, sides, now, origin)
            uow.commit()
        return len(sides)

    def leave_unenrolled(self, group_id: str, link: LegacyLink, users: Sequence[str]) -> RefreshResult | None:
        """Membership follows enrolment: those of ``users`` the legacy system has no active enrolment of
        in the link's course leave the legacy cohort or team, then the user group (whatever the link's
        authority: the link asks for it). A user enrolled again meanwhile stays. A frozen group is left
        as it is (None)."""
        now = self.clock()
        with self._operation(group_id, "follow-enrolment") as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            group = self._locked(uow, group_id)
            if group.frozen:
                return None
            enrolled = {
                user
                for track in legacy.list_tracks(link.course_id)
                for user in legacy.track_members(link.course_id, track.mode)
            }
            members = RULES[link.kind].members(legacy, link)
            leaving = sorted(user for user in users if user not in enrolled and user in members)
            self._remove_members(legacy, link, leaving, undo)
            result = self._pull(legacy, uow, group, link, now, "legacy-unenrolment", only_users=users)
            self._expect(uow, legacy, group_id, link, (), leaving, now)
            uow.commit()
        return result

    def reconcile(
        self, group_id: str, link: LegacyLink, *, dry_run: bool = False, sample: int = 20
    ) -> Reconciled:
        """Compare both sides of a link and apply its authority: ``legacy`` and ``both`` pull (the
        legacy side wins: courseinfra's own edits went to it first), ``user_group`` pushes (the legacy
        group is given the user group's members and relieved of the others, with the undo stack; a
        track's extra members cannot be removed, only moved, and are reported as not fixed). The drift
        of the group is forgotten once fixed. ``dry_run`` writes nothing. A frozen group is skipped."""
        if dry_run:
            with self._reading(group_id, "reconcile"), self.uow_factory().reading() as uow:
                group = self._locked(uow, group_id, for_update=False)
                if group.frozen:
                    return Reconciled(group_id, link, "skipped", skipped="frozen")
                return self._compare(uow, uow.legacy, group_id, link, sample, dry_run=True).reconciled
        now = self.clock()
        with self._operation(group_id, "reconcile") as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            group = self._locked(uow, group_id)
            if group.frozen:
                return Reconciled(group_id, link, "skipped", skipped="frozen")
            found = self._compare(uow, legacy, group_id, link, sample, dry_run=False)
            fixable = [*found.only_in_legacy, *found.only_in_group]
            if found.action == "push":
                self._add_members(legacy, link, found.only_in_group, undo, uow, now)
                self._remove_members(legacy, link, found.removable, undo)
                self._expect(uow, legacy, group_id, link, found.only_in_group, found.removable, now)
                # Only the users pushed: a track's member that could not be removed is not pulled in.
                fixable = [*found.only_in_group, *found.removable]
            if fixable:
                self._pull(legacy, uow, group, link, now, "legacy-reconcile", only_users=fixable)
            uow.drift.clear(group_id)
            if found.reconciled.not_fixed:
                # Still drift: a push cannot remove a learner from a track.
                uow.drift.record(
                    group_id,
                    dict.fromkeys(found.reconciled.not_fixed, DriftSide.ONLY_IN_LEGACY_GROUP),
                    now,
                    "reconcile",
                )
            uow.note(
                "group.reconcile",
                f"group:{group_id}",
                way=found.action,
                added=found.reconciled.added,
                removed=found.reconciled.removed,
            )
            uow.commit()
        return replace(found.reconciled, fixed=True)

    def change_members(
        self,
        group_id: str,
        link: LegacyLink,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        operation: str = "members",
        expected_version: int | None = None,
        members_file: MembersFile | None = None,
    ) -> RefreshResult:
        """Add users to the legacy group and remove others, then pull. A learner moved out of another
        cohort or track leaves the user group linked to it. With a ``members_file``, its rows are what
        is added (include) and removed (exclude), every one checked first. Every user named must be in
        the user directory (:class:`UnknownUsers`, or the file's bad rows). Refused under the ``legacy``
        authority (:class:`LegacyAuthoritative`)."""
        check_editable(group_id, link, "changing members")
        now = self.clock()
        with self._operation(group_id, operation) as stack, self.uow_factory() as uow:
            legacy, undo = self._bind(uow, stack)
            group = self._locked(uow, group_id)
            group.check_version(expected_version)
            if members_file is not None:
                members_file.check_known(uow)
                add, remove = sorted(members_file.included), sorted(members_file.excluded)
            else:
                check_known_users(uow, {"add": add, "remove": remove})
            self._add_members(legacy, link, list(add), undo, uow, now)
            self._remove_members(legacy, link, list(remove), undo)
            self._expect(uow, legacy, group_id, link, add, remove, now)
            trigger = "import" if members_file is not None else "members-changed"
            uow.note(f"group.{operation}", f"group:{group_id}", added=len(add), removed=len(remove))
            result = self._pull(legacy, uow, group, link, now, trigger)
            uow.commit()
        return result

    def preview(self, group_id: str, link: LegacyLink, *, sample: int = 100) -> RefreshResult:
        """Who a pull would add and remove; writes nothing (the preview's temporary table aside)."""
        with self._reading(group_id, "preview"), self.uow_factory() as uow:
            group = self._locked(uow, group_id, for_update=False)
            rule, context = self._pull_rule(uow.legacy, group, link, self.clock(), "pull")
            return uow.memberships.preview(group, rule, context, sample=sample)

    def explain(self, group_id: str, user_id: str, link: LegacyLink) -> dict[str, Any]:
        """Whether a user is a member, and whether a pull would keep them: in the legacy group and
        known to the directory (reasons ``legacy-member``, ``not-in-legacy-group``, ``unknown-user``)."""
        with self._reading(group_id, "explain"), self.uow_factory().reading() as uow:
            group = self._locked(uow, group_id, for_update=False)
            member = uow.memberships.is_member(group_id, user_id)
            known = bool(uow.users.get_many([user_id]))
            in_legacy = user_id in RULES[link.kind].members(uow.legacy, link)
        reason = "unknown-user" if not known else "legacy-member" if in_legacy else "not-in-legacy-group"
        assert group.criteria is not None, "a linked group's criteria is its link"
        return {
            "group_id": group_id,
            "user_id": user_id,
            "member": member,
            "would_be_member": known and in_legacy,
            "reason": reason,
            "frozen": group.frozen,
            "criteria": {**criteria_json(group.criteria), "holds": in_legacy},
        }

    # --- steps -----------------------------------------------------------------------------------------

    def _locked(self, uow: UnitOfWork, group_id: str, *, for_update: bool = True) -> UserGroup:
        group = uow.groups.get(group_id, for_update=for_update)
        if group is None:
            raise GroupNotFound(f"no user group {group_id}")
        return group

    def _compare(
        self,
        uow: UnitOfWork,
        legacy: LegacyGroups,
        group_id: str,
        link: LegacyLink,
        sample: int,
        *,
        dry_run: bool,
    ) -> _Comparison:
        """Both sides of a link, and what its authority makes of their difference."""
        in_legacy, only_group = self._sides(uow, legacy, group_id, link, None)
        push = link.authority is Authority.USER_GROUP
        removable = [] if push and link.kind is LegacyKind.TRACK else in_legacy
        reconciled = Reconciled(
            group_id,
            link,
            "push" if push else "pull",
            only_in_legacy_group=len(in_legacy),
            only_in_user_group=len(only_group),
            sample_only_in_legacy_group=tuple(in_legacy[:sample]),
            sample_only_in_user_group=tuple(only_group[:sample]),
            added=len(only_group) if push else len(in_legacy),
            removed=len(removable) if push else len(only_group),
            not_fixed=tuple(sorted(set(in_legacy) - set(removable))),
            dry_run=dry_run,
        )
        return _Comparison(reconciled, in_legacy, only_group, removable)

    def _sides(
        self,
        uow: UnitOfWork,
        legacy: LegacyGroups,
        group_id: str,
        link: LegacyLink,
        users: Sequence[str] | None,
    ) -> tuple[list[str], list[str]]:
        """The users (of ``users``, or all) only in the legacy group and only in the user group, sorted.
        A legacy member the user directory lacks is no difference: a linked group cannot have them."""
        legacy_members = RULES[link.kind].members(legacy, link)
        if users is None:
            stored = uow.memberships.member_ids(group_id)
            concerned = legacy_members | stored
        else:
            concerned = set(users)
            stored = {user for user in concerned if uow.memberships.is_member(group_id, user)}
        in_legacy = sorted(uow.users.known((concerned & legacy_members) - stored))
        only_group = sorted((stored & concerned) - legacy_members)
        return in_legacy, only_group

    def _bind(self, uow: UnitOfWork, undo: UndoStack) -> tuple[LegacyGroups, UndoStack]:
        """The unit of work's legacy groups and the undo stack their steps push on: none when they join
        its transaction (a rollback then undoes both sides)."""
        legacy = uow.legacy
        return legacy, ([] if legacy.joins_transaction else undo)

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
                    kind=error.kind,
                ) from error
            if not isinstance(error, DomainError):
                # An infrastructure failure (a commit refused, a connection lost) after legacy steps:
                # the operator must know, even when everything was rolled back or undone. A caller's
                # mistake (a version conflict, a name taken) is only the caller's error.
                self._log(group_id, operation, type(error).__name__, str(error), not_undone)
            raise

    @contextmanager
    def _reading(self, group_id: str, operation: str) -> Iterator[None]:
        """A legacy error in a read becomes :class:`SyncFailed`; nothing was changed, nothing is logged."""
        try:
            yield
        except LegacyError as error:
            raise SyncFailed(
                f"{operation} of group {group_id} failed on the legacy side ({error.code}: {error}); "
                "nothing was changed",
                legacy_code=error.code,
                details=error.details,
                kind=error.kind,
            ) from error

    def _undo(self, undo: UndoStack) -> list[str]:
        failed = []
        for description, action in reversed(undo):
            try:
                action()
            except Exception as error:
                failed.append(f"{description} ({type(error).__name__}: {error})")
        return failed

    def _log(self, group_id: str, operation: str, code: str, message: str, not_undone: Sequence[str]) -> None:
        failure = SyncFailure(
            id=0,
            at=self.clock(),
            group_id=group_id,
            operation=operation,
            code=code,
            message=message,
            not_undone=tuple(not_undone),
        )
        try:
            with self.uow_factory() as uow:
                uow.sync_log.add(failure)
                uow.commit()
        except Exception:  # the database may be what failed: the caller still gets the first error
            return

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

    def _expect(
        self,
        uow: UnitOfWork,
        legacy: LegacyGroups,
        group_id: str,
        link: LegacyLink,
        added: Sequence[str],
        removed: Sequence[str],
        now: datetime,
    ) -> None:
        """Expect the echoes of this write (in its transaction): the Open edX events it causes."""
        expect_echoes(uow, legacy, group_id, link, added=added, removed=removed, now=now, ttl=self.echo_ttl)

    def _pull_rule(
        self, legacy: LegacyGroups, group: UserGroup, link: LegacyLink, now: datetime, trigger: str
    ) -> tuple[MembershipRule, EvaluationContext]:
        """The rule that makes the membership the legacy group's, each change with a ``legacy-`` reason."""
        members = frozenset(RULES[link.kind].members(legacy, link))
        source = trigger if trigger.startswith("legacy-") else f"legacy-{trigger}"
        return MembershipRule(None, include=members, source=source), EvaluationContext(
            group.scope, now.astimezone(UTC)
        )

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
        rule, context = self._pull_rule(legacy, group, link, now, trigger)
        result = uow.memberships.refresh(group, rule, context, reason=trigger, only_users=only_users)
        record_refresh(uow, group.group_id, result, trigger, now.astimezone(UTC))
        # Both sides now agree for the users pulled: no drift of theirs is left to undo.
        uow.drift.clear(group.group_id, only_users)
        return result
