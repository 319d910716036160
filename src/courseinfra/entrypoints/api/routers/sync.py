"""User groups linked to legacy groups: their members and the sync status."""

from __future__ import annotations

from typing import Any

from fastapi import (
    APIRouter,
)

from courseinfra.domain.access import Permission
from courseinfra.entrypoints.api.deps import (
    AUTH,
    INVALID,
    NOT_FOUND,
    UNKNOWN_USERS,
    AppDep,
    guard,
)
from courseinfra.entrypoints.api.errors import unknown_users
from courseinfra.entrypoints.schemas.common import ErrorResponse
from courseinfra.entrypoints.schemas.groups import GroupRefreshOut
from courseinfra.entrypoints.schemas.sync import LegacyMembersIn, SyncStatusOut
from courseinfra.services import groups, sync

router = APIRouter(
    tags=["sync"],
    dependencies=[guard(read=Permission.READ, write=Permission.MANAGE_GROUPS)],
    responses=AUTH,
)


@router.post(
    "/v1/groups/{group_id}/legacy-members",
    response_model=GroupRefreshOut,
    responses={
        **INVALID,
        **UNKNOWN_USERS,
        **NOT_FOUND,
        502: {"model": ErrorResponse, "description": "The legacy system failed"},
    },
)
def change_legacy_members(app: AppDep, group_id: str, body: LegacyMembersIn) -> Any:
    """Change the members of a group linked to a legacy group: the legacy group first, then the user
    group mirrors it; on a legacy failure nothing changes on either side (``legacy-sync-failed``). Every
    user named must be in the user directory (422 ``invalid-members-file``, before any legacy call)."""
    try:
        result = app.groups.change_legacy_members(group_id, add=body.add, remove=body.remove)
    except groups.UnknownUsers as error:
        return unknown_users(error)
    return GroupRefreshOut.of(result, group_id=group_id)


@router.get("/v1/sync/status", response_model=SyncStatusOut, responses=INVALID)
def sync_status(app: AppDep) -> SyncStatusOut:
    """Every link whose user group and legacy group differ, and the sync failures with the legacy error."""
    return SyncStatusOut.of(sync.sync_status(app.uow_factory))
