"""What a change of a linked group's legacy members takes, the sync status and a reconciliation."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from courseinfra.entrypoints.schemas.common import Timestamp, iso
from courseinfra.services.groups import Reconciled
from courseinfra.services.sync import LinkDifference, SyncStatus
from courseinfra.services.sync.ports import Drift, SyncFailure


class LegacyMembersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: list[str] = Field(
        default_factory=list, description="Users to add to the legacy group, then the user group."
    )
    remove: list[str] = Field(
        default_factory=list, description="Users to remove from it (cohorts and teams)."
    )


class SyncFailureOut(BaseModel):
    """A linked-group operation that failed on the legacy side: the legacy error, and what could not
    be undone (empty: both sides are as they were)."""

    id: int
    at: Timestamp
    group_id: str
    operation: str
    code: str = Field(description="The legacy error's code (or the infrastructure error's class).")
    message: str
    not_undone: list[str]

    @classmethod
    def of(cls, failure: SyncFailure) -> Self:
        return cls(
            id=failure.id,
            at=iso(failure.at),
            group_id=failure.group_id,
            operation=failure.operation,
            code=failure.code,
            message=failure.message,
            not_undone=list(failure.not_undone),
        )


class LinkUnreadableOut(BaseModel):
    """A linked group whose legacy group cannot be read (gone, or the legacy system failed)."""

    group_id: str
    link: dict[str, Any]
    error: str


class LinkDifferenceOut(BaseModel):
    """A linked group whose members differ from its legacy group's (ids capped at 100 a side)."""

    group_id: str
    kind: str
    link: dict[str, Any]
    only_in_user_group: list[str]
    only_in_legacy_group: list[str]
    differences: int = Field(description="Every difference, beyond the ids listed.")
    legacy_members_not_in_directory: int

    @classmethod
    def of(cls, difference: LinkDifference) -> LinkDifferenceOut | LinkUnreadableOut:
        if difference.error is not None:
            return LinkUnreadableOut(
                group_id=difference.group_id, link=difference.link.config(), error=difference.error
            )
        return cls(
            group_id=difference.group_id,
            kind=difference.link.kind.value,
            link=difference.link.config(),
            only_in_user_group=list(difference.only_in_user_group),
            only_in_legacy_group=list(difference.only_in_legacy_group),
            differences=difference.differences,
            legacy_members_not_in_directory=difference.legacy_members_not_in_directory,
        )


class DriftOut(BaseModel):
    """A user an Open edX event showed on one side only of a link whose user group is the authority;
    the next reconciliation pushes the user group's membership to the legacy group."""

    group_id: str
    user_id: str
    side: str = Field(description="only-in-legacy-group or only-in-user-group.")
    detected_at: Timestamp
    origin: str = Field(description="What found it: the Open edX event's type.")

    @classmethod
    def of(cls, drift: Drift) -> Self:
        return cls(
            group_id=drift.group_id,
            user_id=drift.user_id,
            side=drift.side.value,
            detected_at=iso(drift.detected_at),
            origin=drift.origin,
        )


class SyncStatusOut(BaseModel):
    """Every link whose two sides differ, the sync failures kept and the open drift."""

    links: int = Field(description="How many user groups are linked to a legacy group.")
    differing: list[LinkDifferenceOut | LinkUnreadableOut]
    failures: list[SyncFailureOut]
    drift: list[DriftOut] = Field(description="The open drift (100 rows at most).")
    drift_count: int = Field(description="Every row of open drift, beyond those listed.")

    @classmethod
    def of(cls, status: SyncStatus) -> Self:
        return cls(
            links=status.links,
            differing=[LinkDifferenceOut.of(d) for d in status.differing],
            failures=[SyncFailureOut.of(f) for f in status.failures],
            drift=[DriftOut.of(d) for d in status.drift],
            drift_count=status.drift_count,
        )


class ReconcileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_id: str | None = Field(None, description="One linked group; absent: every linked group.")
    dry_run: bool = Field(False, description="Report the drift and what would be fixed; write nothing.")


class ReconciledOut(BaseModel):
    """What reconciling one link found and did (``added`` and ``removed``: to and from the side
    changed, the user group for a pull, the legacy group for a push)."""

    group_id: str
    kind: str
    authority: str
    action: str = Field(description="pull, push, skipped or failed.")
    only_in_legacy_group: int
    only_in_user_group: int
    sample_only_in_legacy_group: list[str]
    sample_only_in_user_group: list[str]
    added: int
    removed: int
    not_fixed: list[str] = Field(description="Users a push cannot remove: a track is left by moving.")
    dry_run: bool
    fixed: bool = Field(description="Whether the difference was written away (never on a dry run).")
    skipped: str | None = None
    error: str | None = None

    @classmethod
    def of(cls, reconciled: Reconciled) -> Self:
        return cls(
            group_id=reconciled.group_id,
            kind=reconciled.link.kind.value,
            authority=reconciled.link.authority.value,
            action=reconciled.action,
            only_in_legacy_group=reconciled.only_in_legacy_group,
            only_in_user_group=reconciled.only_in_user_group,
            sample_only_in_legacy_group=list(reconciled.sample_only_in_legacy_group),
            sample_only_in_user_group=list(reconciled.sample_only_in_user_group),
            added=reconciled.added,
            removed=reconciled.removed,
            not_fixed=list(reconciled.not_fixed),
            dry_run=reconciled.dry_run,
            fixed=reconciled.fixed,
            skipped=reconciled.skipped,
            error=reconciled.error,
        )


class ReconcileOut(BaseModel):
    """Every link reconciled, and how many had drift."""

    links: list[ReconciledOut]
    drifting: int = Field(description="How many links had a difference.")
    failed: int = Field(description="How many links could not be reconciled (their error says why).")

    @classmethod
    def of(cls, results: list[Reconciled]) -> Self:
        return cls(
            links=[ReconciledOut.of(r) for r in results],
            drifting=sum(1 for r in results if r.drift),
            failed=sum(1 for r in results if r.error is not None),
        )
