"""Enrolments: enrol, leave, read progress and metrics, recompute."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    Body,
    Query,
    Response,
)

from courseinfra.domain.access import Forbidden, Permission
from courseinfra.domain.progress import EnrolmentKey
from courseinfra.entrypoints.api.deps import (
    AUTH,
    CONFLICT,
    INVALID,
    NOT_FOUND,
    AppDep,
    ReachDep,
    guard,
)
from courseinfra.entrypoints.schemas.enrolments import (
    ActivityOut,
    EnrolIn,
    EnrolmentOut,
    EnrolOut,
    RecomputedOut,
    RecomputeIn,
)
from courseinfra.services import course_metrics, enrolments

router = APIRouter(
    tags=["enrolments"],
    dependencies=[guard(read=Permission.READ, write=Permission.MANAGE_LEARNING, scoped=True)],
    responses=AUTH,
)


@router.put(
    "/v1/batches/{batch_id}/enrolments/{user_id}",
    response_model=EnrolOut,
    responses={
        201: {"model": EnrolOut, "description": "Enrolled"},
        **INVALID,
        **NOT_FOUND,
        **CONFLICT,
    },
)
def enrol(
    app: AppDep,
    batch_id: str,
    user_id: str,
    response: Response,
    body: Annotated[EnrolIn | None, Body()] = None,
) -> EnrolOut:
    """Enrol a user: 201 if the enrolment is new, 200 if it existed (re-activated if it was left, with
    its progress kept); 409 ``enrolment-closed`` after the batch's last day to enrol."""
    enrolment, created = enrolments.enrol(
        user_id,
        batch_id,
        app.uow_factory(),
        added_by=body.addedby if body else None,
        mode=body.mode if body else None,
    )
    response.status_code = 201 if created else 200
    return EnrolOut.of(enrolment, created=created)


@router.delete(
    "/v1/batches/{batch_id}/enrolments/{user_id}",
    response_model=EnrolmentOut,
    responses={**INVALID, **NOT_FOUND},
)
def unenrol(app: AppDep, batch_id: str, user_id: str) -> EnrolmentOut:
    """Mark an enrolment inactive; its progress is kept."""
    enrolment = enrolments.unenrol(user_id, batch_id, app.uow_factory())
    return EnrolmentOut.of(enrolment)


@router.get(
    "/v1/batches/{batch_id}/enrolments",
    response_model=list[EnrolmentOut],
    responses={**INVALID, **NOT_FOUND},
)
def list_participants(
    app: AppDep,
    batch_id: str,
    after: Annotated[str, Query(description="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[EnrolmentOut]:
    """The enrolments of a batch, by user id."""
    found = enrolments.batch_enrolments(batch_id, app.uow_factory, after_user=after, limit=limit)
    return [EnrolmentOut.of(e) for e in found]


@router.get(
    "/v1/users/{user_id}/enrolments",
    response_model=list[EnrolmentOut],
    responses=INVALID,
)
def list_user_enrolments(app: AppDep, reach: ReachDep, user_id: str) -> list[EnrolmentOut]:
    """A user's enrolments, by course and batch (empty for an unknown user; for a token scoped to
    courses, those in its courses)."""
    found = enrolments.user_enrolments(user_id, app.uow_factory)
    reached = reach.courses(e.key.course_id for e in found)
    return [EnrolmentOut.of(e) for e in found if e.key.course_id in reached]


@router.get(
    "/v1/enrolments/{user_id}/{course_id}/{batch_id}",
    response_model=EnrolmentOut,
    responses={**INVALID, **NOT_FOUND},
)
def get_enrolment(app: AppDep, user_id: str, course_id: str, batch_id: str) -> EnrolmentOut:
    """One enrolment with its progress."""
    key = EnrolmentKey(user_id, course_id, batch_id)
    return EnrolmentOut.of(enrolments.get_enrolment(key, app.uow_factory))


@router.get(
    "/v1/enrolments/{user_id}/{course_id}/{batch_id}/activity",
    response_model=ActivityOut,
    responses={**INVALID, **NOT_FOUND},
)
def get_activity(app: AppDep, user_id: str, course_id: str, batch_id: str) -> ActivityOut:
    """The course's and each unit's metrics of an enrolment (``user_activity_agg``)."""
    key = EnrolmentKey(user_id, course_id, batch_id)
    return ActivityOut.of(enrolments.activity(key, app.uow_factory))


@router.post(
    "/v1/enrolments/recompute",
    response_model=RecomputedOut,
    responses={**INVALID, **NOT_FOUND},
)
def recompute_enrolments(app: AppDep, reach: ReachDep, selection: RecomputeIn) -> RecomputedOut:
    """Re-derive progress and metrics from the stored statuses and the course's current relation
    cache (after a cache rebuild or a fix of the rules); emit only AUDIT events not emitted before. A
    token scoped to courses names one of its courses or batches."""
    if reach.principal.scoped:
        if selection.course_id is None and selection.batch_id is None:
            raise Forbidden("a token scoped to courses recomputes one of its courses or batches: name it")
        if selection.course_id is not None:
            reach.require_course(selection.course_id)
        if selection.batch_id is not None:
            reach.require_batch(selection.batch_id)
    done = course_metrics.recompute_enrolments(
        app.views,
        app.uow_factory,
        course_id=selection.course_id,
        batch_id=selection.batch_id,
        user_id=selection.user_id,
    )
    return RecomputedOut.of(done)
