"""What entry points read of batches and enrolments. Each query reads in a reading unit of work of its
own (a snapshot that waits for no writer) and raises the feature's not-found error where its subject is
missing."""

from __future__ import annotations

from courseinfra.domain.enrolments import CourseBatch, Enrolment
from courseinfra.domain.progress import EnrolmentKey, UnitMetrics
from courseinfra.services.audit.ports import AuditEntry
from courseinfra.services.enrolments.handlers import BatchNotFound, EnrolmentNotFound
from courseinfra.services.enrolments.ports import BatchProgress
from courseinfra.services.unit_of_work import UowFactory


def get_batch(batch_id: str, uow_factory: UowFactory) -> CourseBatch:
    with uow_factory().reading() as uow:
        found = uow.batches.get(batch_id)
    if found is None:
        raise BatchNotFound(f"batch {batch_id} does not exist")
    return found


def list_batches(
    uow_factory: UowFactory, *, course_id: str | None = None, after: str = "", limit: int = 100
) -> list[CourseBatch]:
    """Batches in batch id order, above ``after``, optionally of one course."""
    with uow_factory().reading() as uow:
        return uow.batches.list(course_id=course_id, after=after, limit=limit)


def batch_enrolments(
    batch_id: str, uow_factory: UowFactory, *, after_user: str = "", limit: int = 1000
) -> list[Enrolment]:
    """A page of a batch's enrolments in user order; :class:`BatchNotFound` for an unknown batch."""
    with uow_factory().reading() as uow:
        if uow.batches.get(batch_id) is None:
            raise BatchNotFound(f"batch {batch_id} does not exist")
        return uow.enrolments.list_for_batch(batch_id, after_user=after_user, limit=limit)


def batch_progress(batch_id: str, uow_factory: UowFactory) -> BatchProgress:
    """A batch's progress histogram and completions per day, counted by the store (a batch of any size
    costs one aggregate read); :class:`BatchNotFound` for an unknown batch."""
    with uow_factory().reading() as uow:
        if uow.batches.get(batch_id) is None:
            raise BatchNotFound(f"batch {batch_id} does not exist")
        return uow.enrolments.batch_progress(batch_id)


def user_enrolments(user_id: str, uow_factory: UowFactory) -> list[Enrolment]:
    """A user's enrolments by course and batch (none for an unknown user)."""
    with uow_factory().reading() as uow:
        return uow.enrolments.list_for_user(user_id)


def get_enrolment(key: EnrolmentKey, uow_factory: UowFactory) -> Enrolment:
    with uow_factory().reading() as uow:
        found = uow.enrolments.get_many([key]).get(key)
    if found is None:
        raise _not_enrolled(key)
    return found


def activity(key: EnrolmentKey, uow_factory: UowFactory) -> list[UnitMetrics]:
    """The course and unit metrics of an enrolment (``user_activity_agg``, context ``cb:<batchId>``);
    :class:`EnrolmentNotFound` if there is no such enrolment."""
    with uow_factory().reading() as uow:
        if not uow.enrolments.get_many([key]):
            raise _not_enrolled(key)
        return uow.activity.for_user(key.user_id, f"cb:{key.batch_id}")


def audit_events(
    uow_factory: UowFactory,
    *,
    user_id: str | None = None,
    course_id: str | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[AuditEntry]:
    """The AUDIT events emitted, in emission order, of the user and the course given."""
    with uow_factory().reading() as uow:
        return uow.audits.list(user_id=user_id, course_id=course_id, after_id=after_id, limit=limit)


def _not_enrolled(key: EnrolmentKey) -> EnrolmentNotFound:
    return EnrolmentNotFound(f"{key.user_id} is not enrolled in course {key.course_id}, batch {key.batch_id}")
