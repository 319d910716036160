"""What the sync status reads: every linked group beside its legacy group, the failures kept and the
open drift."""

from __future__ import annotations

from dataclasses import dataclass, field

from courseinfra.domain.legacy import LegacyError, LegacyLink, link_of
from courseinfra.services.sync.kinds import RULES
from courseinfra.services.sync.ports import Drift, SyncFailure
from courseinfra.services.unit_of_work import UnitOfWork, UowFactory

#: How many user ids of each side a differing link lists.
LISTED = 100


@dataclass(frozen=True, slots=True)
class LinkDifference:
    """A linked group whose members differ from its legacy group's (ids capped at :data:`LISTED`;
    ``differences`` counts them all), or whose legacy group cannot be read (``error``)."""

    group_id: str
    link: LegacyLink
    only_in_user_group: tuple[str, ...] = ()
    only_in_legacy_group: tuple[str, ...] = ()
    differences: int = 0
    legacy_members_not_in_directory: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """``drift``: the open drift (at most :data:`LISTED` rows; ``drift_count`` counts them all) of the
    links whose user group is the authority, found by Open edX events and undone by reconciliation."""

    links: int
    differing: list[LinkDifference]
    failures: list[SyncFailure]
    drift: list[Drift] = field(default_factory=list)
    drift_count: int = 0

    @property
    def clean(self) -> bool:
        return not self.differing and not self.failures and not self.drift_count


def sync_status(uow_factory: UowFactory) -> SyncStatus:
    """Every link whose two sides differ (members only in the user group, only in the legacy group, or
    a legacy group that is gone), the sync failures kept and the open drift. Legacy members the directory does not
    know are counted apart: a linked group cannot have them, so they are no difference."""
    with uow_factory().reading() as uow:
        linked = [(g.group_id, link) for g in uow.groups.all() if (link := link_of(g.criteria)) is not None]
        differing = [
            difference
            for group_id, link in linked
            if (difference := _difference(uow, group_id, link)) is not None
        ]
        failures = uow.sync_log.list()
        drift, drift_count = uow.drift.list(limit=LISTED), uow.drift.count()
    return SyncStatus(len(linked), differing, failures, drift, drift_count)


def _difference(uow: UnitOfWork, group_id: str, link: LegacyLink) -> LinkDifference | None:
    try:
        legacy_members = RULES[link.kind].members(uow.legacy, link)
    except LegacyError as error:
        return LinkDifference(group_id, link, error=f"{error.code}: {error}")
    stored = uow.memberships.member_ids(group_id)
    # Only the legacy members the group lacks are looked up in the directory: the others are members,
    # and a member is a directory user (a group admits no one else; the directory deletes no one).
    outside = legacy_members - stored
    known = uow.users.known(outside)
    only_group, only_legacy = sorted(stored - legacy_members), sorted(known)
    if not only_group and not only_legacy:
        return None
    return LinkDifference(
        group_id,
        link,
        tuple(only_group[:LISTED]),
        tuple(only_legacy[:LISTED]),
        len(only_group) + len(only_legacy),
        len(outside - known),
    )
