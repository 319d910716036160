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
from courseinfra.entrypoints.schemas.sync import LegacyMembersIn

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
    result = app.sync.add_members(group_id, body.add) if body.add else None
    if body.remove:
        result = app.sync.remove_members(group_id, body.remove)
    return {"group_id": group_id, **(refresh_json(result) if result else {})}


@router.get("/v1/sync/status")
def sync_status(app: AppDep) -> dict[str, Any]:
    """Every link whose user group and legacy group differ, and the sync failures with the legacy error."""
    return app.sync.status()
