"""User groups linked to legacy groups: their members and the sync status."""

from __future__ import annotations

from typing import Any

from fastapi import (
    APIRouter,
)

from courseinfra.entrypoints.api.deps import (
    INVALID,
    NOT_FOUND,
    AppDep,
)
from courseinfra.entrypoints.schemas.common import ErrorResponse
from courseinfra.entrypoints.schemas.groups import refresh_json
from courseinfra.entrypoints.schemas.sync import LegacyMembersIn, sync_status_json
from courseinfra.services import sync

router = APIRouter(tags=["sync"])


@router.post(
    "/v1/groups/{group_id}/legacy-members",
    responses={
        **INVALID,
        **NOT_FOUND,
        502: {"model": ErrorResponse, "description": "The legacy system failed"},
    },
)
def change_legacy_members(app: AppDep, group_id: str, body: LegacyMembersIn) -> dict[str, Any]:
    """Change the members of a group linked to a legacy group: the legacy group first, then the user
    group mirrors it; on a legacy failure nothing changes on either side (``legacy-sync-failed``)."""
    result = app.groups.change_legacy_members(group_id, add=body.add, remove=body.remove)
    return {"group_id": group_id, **refresh_json(result)}


@router.get("/v1/sync/status")
def sync_status(app: AppDep) -> dict[str, Any]:
    """Every link whose user group and legacy group differ, and the sync failures with the legacy error."""
    return sync_status_json(sync.sync_status(app.uow_factory))
