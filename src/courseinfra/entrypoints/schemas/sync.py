"""What a change of a linked group's legacy members takes, and the sync status."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


def link_difference_json(difference: LinkDifference) -> dict[str, Any]:
    """A differing link; one whose legacy group cannot be read has only its id, link and error."""
    if difference.error is not None:
        return {"group_id": difference.group_id, "link": difference.link.config(), "error": difference.error}
    return {
        "group_id": difference.group_id,
        "kind": difference.link.kind.value,
        "link": difference.link.config(),
        "only_in_user_group": list(difference.only_in_user_group),
        "only_in_legacy_group": list(difference.only_in_legacy_group),
        "differences": difference.differences,
        "legacy_members_not_in_directory": difference.legacy_members_not_in_directory,
    }


def sync_status_json(status: SyncStatus) -> dict[str, Any]:
    return {
        "links": status.links,
        "differing": [link_difference_json(d) for d in status.differing],
        "failures": [failure_json(f) for f in status.failures],
    }
