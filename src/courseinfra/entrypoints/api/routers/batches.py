"""Course batches: create, list, read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import (
    APIRouter,
    Query,
)

from courseinfra.domain.access import Permission
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.entrypoints.api.deps import (
    AUTH,
    CONFLICT,
    INVALID,
    NOT_FOUND,
    AppDep,
    ReachDep,
    guard,
)
from courseinfra.entrypoints.schemas.batches import BatchIn, BatchOut
from courseinfra.services import enrolments

router = APIRouter(
    tags=["batches"],
    dependencies=[guard(read=Permission.READ, write=Permission.MANAGE_LEARNING, scoped=True)],
    responses=AUTH,
)


@router.post(
    "/v1/batches",
    status_code=201,
    response_model=BatchOut,
    responses={**INVALID, **NOT_FOUND, **CONFLICT},
)
def create_batch(app: AppDep, reach: ReachDep, body: BatchIn) -> BatchOut:
    """Create a batch of a course the hierarchy store knows (404 ``course-not-found``, 409 ``batch-exists``)."""
    reach.require_course(body.courseid)
    batch = CourseBatch(
        batch_id=body.batchid,
        course_id=body.courseid,
        name=body.name,
        created_at=datetime.now(UTC),
        description=body.description,
        start_date=body.startdate,
        end_date=body.enddate,
        enrollment_end_date=body.enrollmentenddate,
        enrollment_type=body.enrollmenttype,
        created_for=tuple(body.createdfor),
        mentors=tuple(body.mentors),
        created_by=body.createdby,
    )
    return BatchOut.of(enrolments.create_batch(batch, app.uow_factory()))


@router.get("/v1/batches", response_model=list[BatchOut], responses=INVALID)
def list_batches(
    app: AppDep,
    reach: ReachDep,
    course: Annotated[str | None, Query(description="Only this course's batches.")] = None,
    after: Annotated[str, Query(description="Only batch ids above this one (paging).")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[BatchOut]:
    """Batches in batch id order (for a token scoped to courses, those of its courses)."""
    shown: list[BatchOut] = []
    while len(shown) < limit:
        found = enrolments.list_batches(app.uow_factory, course_id=course, after=after, limit=limit)
        reached = reach.courses(batch.course_id for batch in found)
        shown.extend(BatchOut.of(batch) for batch in found if batch.course_id in reached)
        if len(found) < limit:
            break
        after = found[-1].batch_id
    return shown[:limit]


@router.get("/v1/batches/{batch_id}", response_model=BatchOut, responses={**INVALID, **NOT_FOUND})
def get_batch(app: AppDep, batch_id: str) -> BatchOut:
    """One batch."""
    return BatchOut.of(enrolments.get_batch(batch_id, app.uow_factory))
