"""The trail of who changed what (administrators only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from courseinfra.domain.access import Permission
from courseinfra.entrypoints.api.deps import AUTH, INVALID, AppDep, guard
from courseinfra.entrypoints.schemas.common import MAX_ID
from courseinfra.entrypoints.schemas.trail import ChangeOut
from courseinfra.services.trail.queries import list_changes

router = APIRouter(
    tags=["trail"],
    dependencies=[guard(read=Permission.ADMINISTER, write=Permission.ADMINISTER)],
    responses=AUTH,
)


@router.get("/v1/trail", response_model=list[ChangeOut], responses=INVALID)
def list_trail(
    app: AppDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Only change ids above this one (paging).")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    target: Annotated[
        str | None, Query(max_length=300, description="Only changes to this (group:g1).")
    ] = None,
    actor: Annotated[str | None, Query(max_length=200, description="Only this actor's changes.")] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="Only actions starting with this (group.).")
    ] = None,
) -> list[ChangeOut]:
    """Changes to groups, members, users, content, batches, enrolments, replays and tokens, oldest
    first: who made each, when, through what and from where."""
    found = list_changes(
        app.uow_factory, after_id=after, limit=limit, target=target, subject=actor, action_prefix=action
    )
    return [ChangeOut.of(record) for record in found]
