"""What a change of a linked group's legacy members takes, and the sync status."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from courseinfra.entrypoints.schemas.common import Timestamp, iso
from courseinfra.services.sync import LinkDifference, SyncStatus
from courseinfra.services.sync.ports import SyncFailure


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


class SyncStatusOut(BaseModel):
    """Every link whose two sides differ, and the sync failures kept."""

    links: int = Field(description="How many user groups are linked to a legacy group.")
    differing: list[LinkDifferenceOut | LinkUnreadableOut]
    failures: list[SyncFailureOut]

    @classmethod
    def of(cls, status: SyncStatus) -> Self:
        return cls(
            links=status.links,
            differing=[LinkDifferenceOut.of(d) for d in status.differing],
            failures=[SyncFailureOut.of(f) for f in status.failures],
        )
