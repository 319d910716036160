"""User groups linked to legacy groups: their members, the sync status and reconciliation."""

from __future__ import annotations

from typing import Any

from fastapi import (
    APIRouter,
)

from courseinfra.domain.access import Permission
from courseinfra.entrypoints.api.deps import (
    AUTH,
    CONFLICT,
    INVALID,
    NOT_FOUND,
    UNKNOWN_USERS,
    AppDep,
    guard,
    needs,
)
from courseinfra.entrypoints.api.errors import unknown_users
from courseinfra.entrypoints.schemas.common import ErrorResponse
from courseinfra.entrypoints.schemas.groups import GroupRefreshOut
from courseinfra.entrypoints.schemas.sync import LegacyMembersIn, ReconcileIn, ReconcileOut, SyncStatusOut
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
        **CONFLICT,
        502: {"model": ErrorResponse, "description": "The legacy system failed"},
    },
)
def change_legacy_members(app: AppDep, group_id: str, body: LegacyMembersIn) -> Any:
    """Change the members of a group linked to a legacy group: the legacy group first, then the user
    group mirrors it; on a legacy failure nothing changes on either side (``legacy-sync-failed``). Every
    user named must be in the user directory (422 ``invalid-members-file``, before any legacy call).
    A link whose authority is the legacy group refuses it (409 ``legacy-authoritative``)."""
    try:
        result = app.groups.change_legacy_members(group_id, add=body.add, remove=body.remove)
    except groups.UnknownUsers as error:
        return unknown_users(error)
    return GroupRefreshOut.of(result, group_id=group_id)


@router.get("/v1/sync/status", response_model=SyncStatusOut, responses=INVALID)
def sync_status(app: AppDep) -> SyncStatusOut:
    """Every link whose user group and legacy group differ, and the sync failures with the legacy error."""
    return SyncStatusOut.of(sync.sync_status(app.uow_factory))


@router.post(
    "/v1/sync/reconcile",
    response_model=ReconcileOut,
    dependencies=[needs(Permission.OPERATE)],
    responses={
        **INVALID,
        **NOT_FOUND,
        **CONFLICT,
        502: {"model": ErrorResponse, "description": "The legacy system failed (one group named)"},
    },
)
def reconcile(app: AppDep, body: ReconcileIn) -> ReconcileOut:
    """Compare both sides of one linked group (``group_id``) or of every one, and apply each link's
    authority: ``legacy`` and ``both`` pull the legacy membership, ``user_group`` pushes the user
    group's to the legacy group. Reports per link the drift found (counts and a sample of user ids) and
    whether it was fixed; ``dry_run`` writes nothing. An operator's or an administrator's call
    (``operate``). For every group, a link whose legacy side fails is reported with its error and the
    others are reconciled; for one group named, its failure is the answer (``legacy-sync-failed``), and
    a group that is not linked is 409 ``group-not-linked``."""
    return ReconcileOut.of(app.groups.reconcile(body.group_id, dry_run=body.dry_run))
