"""The one door of user groups, linked to a legacy group or not.

Every verb of the user groups API and CLI is a method here. A group whose criteria is a legacy criterion
(its link) goes to :class:`~courseinfra.services.groups.linked.LinkedGroups`, which carries the operation
out on the legacy group too; any other goes to the plain handlers and queries. Reads never write: a
linked group's membership is the legacy group's as of its last refresh (``last_refreshed_at``), and a
preview shows what a refresh would pull.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from courseinfra.domain.criteria import CriteriaRegistry, Node, Scope
from courseinfra.domain.errors import ErrorKind
from courseinfra.domain.groups import GroupFrozen, UserGroup
from courseinfra.domain.legacy import Authority, LegacyError, LegacyLink, link_of
from courseinfra.domain.legacy_events import Touched, touched_links
from courseinfra.domain.openedx_events import OpenedxEvent
from courseinfra.services.groups import handlers, queries
from courseinfra.services.groups.echoes import DEFAULT_ECHO_TTL, consume_echoes
from courseinfra.services.groups.handlers import (
    ON_DEMAND,
    UNSET,
    GroupDefinition,
    GroupNotFound,
    GroupView,
    read_members_file,
)
from courseinfra.services.groups.linked import DeletePolicy, LinkedGroups, Reconciled, SyncFailed
from courseinfra.services.groups.ports import Member, MembershipChange, RefreshResult
from courseinfra.services.unit_of_work import UnitOfWork

#: The trigger (and membership reason) of a pull an Open edX event caused.
LEGACY_EVENT = "legacy-event"


@dataclass(frozen=True, slots=True)
class LegacyEventsApplied:
    """What applying Open edX events did: ``links`` acted on (pulled, drift read, or left by the
    unenrolled), and ``echoes`` consumed (users for whom an event was courseinfra's own write coming
    back, so that they needed no legacy read)."""

    links: int
    echoes: int


@dataclass
class UserGroups:
    """The user group operations, with the settings they need."""

    uow_factory: Callable[[], UnitOfWork]
    registry: CriteriaRegistry
    delete_policy: DeletePolicy = DeletePolicy.RESTRICT
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: How long the echo of a write to a legacy group is expected (ADR 0022).
    echo_ttl: timedelta = DEFAULT_ECHO_TTL

    @property
    def linked(self) -> LinkedGroups:
        return LinkedGroups(self.uow_factory, self.registry, self.delete_policy, self.clock, self.echo_ttl)

    # --- commands --------------------------------------------------------------------------------------

    def create_group(self, group_id: str, definition: GroupDefinition) -> tuple[GroupView, RefreshResult]:
        """Create a group and compute its membership (not for a frozen one); a legacy criterion creates
        or links its legacy group and pushes the include list to it."""
        link = None
        if definition.criteria is not None:
            link = link_of(self.registry.parse(definition.criteria, Scope.parse(definition.scope)))
        if link is None:
            return handlers.create_group(group_id, definition, self.uow_factory(), self.registry)
        result = self.linked.create(group_id, definition, link)
        return self.get_group(group_id), result

    def update_group(
        self, group_id: str, *, expected_version: int | None, **changes: Any
    ) -> tuple[GroupView, RefreshResult | None]:
        """A PUT or a PATCH: ``changes`` are the fields given. A linked group's name and include list go
        to its legacy group; its scope and legacy group cannot change (repeating them is no change), its
        link's authority and follow_enrolment can."""
        current, link = self._read(group_id)
        if link is None:
            return handlers.update_group(
                group_id, self.uow_factory(), self.registry, expected_version=expected_version, **changes
            )
        if "scope" in changes and Scope.parse(changes["scope"]) == current.scope:
            del changes["scope"]
        criteria = changes.get("criteria")
        if criteria is not None:
            parsed = self.registry.parse(criteria, current.scope)
            new_link = link_of(parsed)
            if new_link == link:
                del changes["criteria"]
            elif new_link is not None and new_link.same_legacy_group(link):
                changes["criteria"] = parsed  # only the authority or follow_enrolment changes
        if ("criteria" in changes and not isinstance(changes["criteria"], Node)) or "scope" in changes:
            raise LegacyError(
                "a linked group's criteria and scope cannot change: delete it and link another legacy group",
                code="invalid-group",
            )
        result = self.linked.update(group_id, link, expected_version=expected_version, changes=changes)
        return self.get_group(group_id), result

    def delete_group(self, group_id: str, *, expected_version: int | None) -> str:
        """Delete a group; returns ``deleted``, ``detached`` (its legacy group stays) or ``archived``."""
        _, link = self._read(group_id)
        if link is None:
            handlers.delete_group(group_id, self.uow_factory(), expected_version=expected_version)
            return "deleted"
        return self.linked.delete(group_id, link, expected_version=expected_version)

    def import_members(
        self, group_id: str, text: str, *, expected_version: int | None = None
    ) -> tuple[GroupView, RefreshResult | None]:
        """A members file's users join the include or the exclude list, all or nothing; for a linked
        group, they are added to or removed from its legacy group."""
        _, link = self._read(group_id)
        if link is None:
            return handlers.import_members(
                group_id, text, self.uow_factory(), expected_version=expected_version
            )
        members_file = read_members_file(text)
        result = self.linked.change_members(
            group_id, link, operation="import", expected_version=expected_version, members_file=members_file
        )
        return self.get_group(group_id), result

    def change_legacy_members(
        self, group_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> RefreshResult:
        """Add users to a linked group's legacy group and remove others; the user group mirrors it."""
        _, link = self._read(group_id)
        if link is None:
            raise LegacyError(
                f"group {group_id} is not linked to a legacy group: change its include list",
                code="invalid-group",
            )
        return self.linked.change_members(group_id, link, add=add, remove=remove)

    def refresh_group(self, group_id: str, trigger: str = ON_DEMAND) -> tuple[UserGroup, RefreshResult]:
        """Re-evaluate a group now (a linked one pulls its legacy group's membership)."""
        _, link = self._read(group_id)
        if link is None:
            return handlers.refresh_group(group_id, self.uow_factory(), trigger=trigger, now=self.clock())
        return self.linked.refresh(group_id, link, trigger)

    def refresh_all(self, trigger: str = ON_DEMAND) -> dict[str, RefreshResult]:
        """Refresh every enabled, unfrozen group, one transaction each; the results by group id. A
        group deleted or frozen meanwhile is left out, as one whose legacy side failed (in the log)."""
        ids = [g.group_id for g in queries.list_groups(self.uow_factory) if g.enabled and not g.frozen]
        results = {}
        for group_id in ids:
            try:
                _, results[group_id] = self.refresh_group(group_id, trigger)
            except (GroupNotFound, GroupFrozen, SyncFailed):
                continue
        return results

    def apply_legacy_event(self, event: OpenedxEvent) -> int:
        """:meth:`apply_legacy_events` of one event."""
        return self.apply_legacy_events([event])

    def apply_legacy_events(self, events: Sequence[OpenedxEvent]) -> int:
        """:meth:`apply_legacy_batch`, returning how many links were acted on."""
        return self.apply_legacy_batch(events).links

    def apply_legacy_batch(self, events: Sequence[OpenedxEvent]) -> LegacyEventsApplied:
        """Act on the linked groups Open edX events touch, by each link's authority (ADR 0022: an event
        is a trigger; the legacy state is read for the users it concerns): ``legacy`` and ``both``
        pull; ``user_group`` records the difference as drift, undone by the next reconciliation; a link
        that follows enrolment has the unenrolled learners leave its legacy group and user group.

        The events of a batch are acted on together: the unenrolments first, in order, then one pull
        (or one drift reading) per link for the union of the users its events concern, which reads the
        legacy group once, however many events name it. Before that, each user for whom an event is the
        echo of courseinfra's own write (it says the state the write made, which the user group still
        has) is taken out and the echo consumed: that user needs no pull, and a link none of whose
        touched users needs one is not read at all (:func:`~courseinfra.services.groups.echoes.consume_echoes`).
        A group deleted meanwhile is passed over; a legacy failure raises :class:`SyncFailed` (logged),
        after the links done before it (the echoes consumed stay consumed: their users agreed)."""
        with self.uow_factory().reading() as uow:
            links = [
                (g.group_id, link) for g in uow.groups.all() if (link := link_of(g.criteria)) is not None
            ]
        follows = frozenset(group_id for group_id, link in links if link.follow_enrolment)
        leaves: list[Touched] = []
        merged: dict[str, tuple[LegacyLink, set[str] | None, list[str]]] = {}
        found = consume_echoes(
            self.uow_factory,
            [(event, touched_links(event, links, follows_enrolment=follows)) for event in events],
            self.clock(),
        )
        for event, touched_by_event in found.touched:
            for touched in touched_by_event:
                if touched.unenrolled and touched.users is not None:
                    leaves.append(touched)
                    continue
                link, users, types = merged.setdefault(touched.group_id, (touched.link, set(), []))
                if users is not None and touched.users is not None:
                    users.update(touched.users)
                else:
                    merged[touched.group_id] = (link, None, types)
                if event.event_type not in types:
                    types.append(event.event_type)
        acted = 0
        for touched in leaves:
            with suppress(GroupNotFound):
                self.linked.leave_unenrolled(touched.group_id, touched.link, touched.users or ())
                acted += 1
        for group_id, (link, users, types) in merged.items():
            chosen = None if users is None else sorted(users)
            with suppress(GroupNotFound):
                if link.authority is Authority.USER_GROUP:
                    self.linked.record_drift(group_id, link, chosen, ", ".join(types))
                else:
                    self.linked.pull_users(group_id, link, chosen, LEGACY_EVENT)
                acted += 1
        return LegacyEventsApplied(acted, found.consumed)

    def reconcile(self, group_id: str | None = None, *, dry_run: bool = False) -> list[Reconciled]:
        """Reconcile one linked group (``group_id``) or every one: compare both sides and apply each
        link's authority (:meth:`LinkedGroups.reconcile`); ``dry_run`` writes nothing. Every link is
        tried: a legacy failure (logged) is reported as the link's ``error``; a group that is not
        linked is refused (``group-not-linked``, a conflict with the group's state)."""
        if group_id is not None:
            _, link = self._read(group_id)
            if link is None:
                raise LegacyError(
                    f"group {group_id} is not linked to a legacy group: nothing to reconcile",
                    code="group-not-linked",
                    kind=ErrorKind.CONFLICT,
                )
            return [self.linked.reconcile(group_id, link, dry_run=dry_run)]
        with self.uow_factory().reading() as uow:
            links = [
                (g.group_id, link) for g in uow.groups.all() if (link := link_of(g.criteria)) is not None
            ]
        results = []
        for each, link in links:
            try:
                results.append(self.linked.reconcile(each, link, dry_run=dry_run))
            except GroupNotFound:
                continue  # deleted since the list was read
            except SyncFailed as error:
                results.append(Reconciled(each, link, "failed", dry_run=dry_run, error=str(error)))
        return results

    # --- queries ---------------------------------------------------------------------------------------

    def get_group(self, group_id: str) -> GroupView:
        return queries.get_group(group_id, self.uow_factory)

    def list_groups(self, *, scope: str | None = None) -> list[UserGroup]:
        return queries.list_groups(self.uow_factory, scope=scope)

    def members(self, group_id: str, *, after: str = "", limit: int = 100) -> list[Member]:
        return queries.group_members(group_id, self.uow_factory, after=after, limit=limit)

    def history(
        self, group_id: str, *, user_id: str | None = None, after_id: int = 0, limit: int = 100
    ) -> list[MembershipChange]:
        return queries.group_history(
            group_id, self.uow_factory, user_id=user_id, after_id=after_id, limit=limit
        )

    def preview(
        self, group_id: str, *, criteria: Mapping[str, Any] | None = UNSET, sample: int = 100
    ) -> RefreshResult:
        """Who a refresh would add and remove, with the stored criteria or ``criteria``; writes nothing.
        A linked group's preview is what a pull would change (other criteria are refused)."""
        current, link = self._read(group_id)
        if link is None:
            return queries.preview_group(
                group_id, self.uow_factory, self.registry, criteria=criteria, sample=sample, now=self.clock()
            )
        if criteria is not UNSET and (
            criteria is None or link_of(self.registry.parse(criteria, current.scope)) != link
        ):
            raise LegacyError(
                "a linked group's criteria cannot change: its preview is what a refresh would pull",
                code="invalid-group",
            )
        return self.linked.preview(group_id, link, sample=sample)

    def explain(self, group_id: str, user_id: str) -> dict[str, Any]:
        """Why a user is, or is not, a member (for a linked group: whether the legacy group has them)."""
        _, link = self._read(group_id)
        if link is None:
            return queries.explain_membership(
                group_id, user_id, self.uow_factory, self.registry, now=self.clock()
            )
        return self.linked.explain(group_id, user_id, link)

    def _read(self, group_id: str) -> tuple[UserGroup, LegacyLink | None]:
        group = queries.get_group(group_id, self.uow_factory).group
        return group, link_of(group.criteria)
