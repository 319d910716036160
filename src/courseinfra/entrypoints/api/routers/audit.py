"""The AUDIT events emitted for enrolments."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    Query,
)

from courseinfra.domain.access import Permission
from courseinfra.entrypoints.api.deps import (
    AUTH,
    INVALID,
    AppDep,
    guard,
)
from courseinfra.entrypoints.schemas.audit import AuditEntryOut
from courseinfra.entrypoints.schemas.common import MAX_ID
from courseinfra.services import enrolments

router = APIRouter(
    tags=["audit"],
    dependencies=[guard(read=Permission.READ, write=Permission.OPERATE)],
    responses=AUTH,
)


@router.get("/v1/audit-events", response_model=list[AuditEntryOut], responses=INVALID)
def list_audit_events(
    app: AppDep,
    user: Annotated[str | None, Query(description="Only this user's events.")] = None,
    course: Annotated[str | None, Query(description="Only this course's events.")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Only entry ids above this one (paging).")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[AuditEntryOut]:
    """AUDIT events in the order they were emitted, each with its entry id (ids grow, with gaps)."""
    entries = enrolments.audit_events(
        app.uow_factory, user_id=user, course_id=course, after_id=after, limit=limit
    )
    return [AuditEntryOut.of(entry) for entry in entries]
