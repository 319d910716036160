"""Batches and enrolments: what operators do with the ``course_batch`` and ``user_enrolments`` tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from courseinfra.domain.enrolments import CourseBatch, Enrolment
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.events import EnrolmentChanged
from courseinfra.domain.progress import EnrolmentKey, EnrolmentState
from courseinfra.services.unit_of_work import AlreadyExists, UnitOfWork


class BatchExists(DomainError):
    code = "batch-exists"
    kind = ErrorKind.CONFLICT


class BatchNotFound(DomainError):
    code = "batch-not-found"
    kind = ErrorKind.NOT_FOUND


class CourseNotFound(DomainError):
    code = "course-not-found"
    kind = ErrorKind.NOT_FOUND


class EnrolmentNotFound(DomainError):
    code = "enrolment-not-found"
    kind = ErrorKind.NOT_FOUND


class EnrolmentClosed(DomainError):
    code = "enrolment-closed"
    kind = ErrorKind.CONFLICT


class InvalidBatch(DomainError):
    code = "invalid-batch"


#: The mode of an enrolment made without one (Open edX's default track).
DEFAULT_MODE = "audit"


def create_batch(batch: CourseBatch, uow: UnitOfWork) -> CourseBatch:
    """Create a batch of a course the hierarchy store knows; its dates must be in order (start, last day
    to enrol, end)."""
    if batch.start_date and batch.end_date and batch.end_date < batch.start_date:
        raise InvalidBatch(
            f"batch {batch.batch_id} ends ({batch.end_date}) before it starts ({batch.start_date})"
        )
    if batch.enrollment_end_date and batch.end_date and batch.enrollment_end_date > batch.end_date:
        raise InvalidBatch(
            f"batch {batch.batch_id}: enrolment ends ({batch.enrollment_end_date}) after the batch ({batch.end_date})"
        )
    with uow:
        if uow.hierarchies.get(batch.course_id) is None:
            raise CourseNotFound(f"no hierarchy is stored for course {batch.course_id}")
        try:
            uow.batches.add(batch)
        except AlreadyExists:
            raise BatchExists(f"batch {batch.batch_id} exists") from None
        uow.note("batch.create", f"batch:{batch.batch_id}", course=batch.course_id)
        uow.commit()
    return batch


def enrol(
    user_id: str,
    batch_id: str,
    uow: UnitOfWork,
    *,
    added_by: str | None = None,
    at: datetime | None = None,
    mode: str | None = None,
) -> tuple[Enrolment, bool]:
    """Enrol ``user_id`` in a batch; return the enrolment and whether it is new. Enrolling again
    re-activates an enrolment that was left, keeping its progress; ``mode`` (default ``audit`` for a new
    enrolment) changes its mode (track)."""
    at = at or datetime.now(UTC)
    with uow:
        batch = uow.batches.get(batch_id)
        if batch is None:
            raise BatchNotFound(f"batch {batch_id} does not exist")
        if batch.enrollment_end_date is not None and at.date() > batch.enrollment_end_date:
            raise EnrolmentClosed(
                f"enrolment in batch {batch_id} closed on {batch.enrollment_end_date.isoformat()}"
            )
        key = EnrolmentKey(user_id, batch.course_id, batch_id)
        created = uow.enrolments.add(
            Enrolment(
                EnrolmentState(key=key, last_updated=at),
                active=True,
                enrolled_date=at,
                added_by=added_by,
                mode=mode or DEFAULT_MODE,
            )
        )
        if not created:
            uow.enrolments.set_active(key, True, at, mode=mode)
        enrolment = uow.enrolments.get_many([key])[key]
        uow.record(_changed(enrolment, at))
        uow.note("enrolment.enrol", f"batch:{batch_id}", user=user_id, created=created, mode=enrolment.mode)
        uow.commit()
    return enrolment, created


def unenrol(user_id: str, batch_id: str, uow: UnitOfWork, at: datetime | None = None) -> Enrolment:
    """Mark an enrolment inactive; its progress is kept."""
    at = at or datetime.now(UTC)
    with uow:
        batch = uow.batches.get(batch_id)
        if batch is None:
            raise BatchNotFound(f"batch {batch_id} does not exist")
        key = EnrolmentKey(user_id, batch.course_id, batch_id)
        if not uow.enrolments.set_active(key, False, at):
            raise EnrolmentNotFound(f"{user_id} is not enrolled in batch {batch_id}")
        enrolment = uow.enrolments.get_many([key])[key]
        uow.record(_changed(enrolment, at))
        uow.note("enrolment.unenrol", f"batch:{batch_id}", user=user_id)
        uow.commit()
    return replace(enrolment, active=False)


def _changed(enrolment: Enrolment, at: datetime) -> EnrolmentChanged:
    key = enrolment.key
    return EnrolmentChanged(
        user_id=key.user_id,
        course_id=key.course_id,
        batch_id=key.batch_id,
        active=enrolment.active,
        mode=enrolment.mode,
        occurred_at=at,
    )
