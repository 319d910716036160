"""Events kept because they were not processed: list and replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    Path,
    Query,
)

from courseinfra.domain.access import Permission
from courseinfra.domain.job_requests import Outcome
from courseinfra.entrypoints.api.deps import (
    AUTH,
    INVALID,
    NOT_FOUND,
    AppDep,
    guard,
)
from courseinfra.entrypoints.schemas.common import MAX_ID
from courseinfra.entrypoints.schemas.failed_events import FailedEventOut, ReplayOut
from courseinfra.services import failed_events
from courseinfra.services.events.ingest import replay_failed

router = APIRouter(
    tags=["failed events"],
    dependencies=[guard(read=Permission.OPERATE, write=Permission.OPERATE)],
    responses=AUTH,
)


@router.get("/v1/failed-events", response_model=list[FailedEventOut], responses=INVALID)
def list_failed(
    app: AppDep,
    job: Annotated[str | None, Query(description="Only this job's events.")] = None,
    code: Annotated[str | None, Query(description="Only events kept with this code.")] = None,
    skipped: Annotated[bool, Query(description="Also skipped events.")] = False,
    resolved: Annotated[bool, Query(description="Also events replayed successfully.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Only ids above this one (paging).")] = 0,
) -> list[FailedEventOut]:
    """Events kept because they were not processed, oldest first."""
    outcomes = (Outcome.FAILED, Outcome.SKIPPED) if skipped else (Outcome.FAILED,)
    events = failed_events.list_failed_events(
        app.uow_factory,
        job=job,
        code=code,
        outcomes=outcomes,
        include_resolved=resolved,
        limit=limit,
        after_id=after,
    )
    return [FailedEventOut.of(event) for event in events]


@router.post(
    "/v1/failed-events/{id}/replay",
    response_model=ReplayOut,
    responses={**INVALID, **NOT_FOUND},
)
def replay(app: AppDep, event_id: Annotated[int, Path(alias="id", ge=1, le=MAX_ID)]) -> ReplayOut:
    """Run a kept event through its job again; it is resolved if it is processed this time."""
    events = failed_events.get_failed_events([event_id], app.uow_factory)
    [result] = replay_failed(events, app.router, app.uow_factory)
    return ReplayOut.of(result)
