"""Enrolments: course batches, enrolling and unenrolling, and what a learner's enrolment holds."""

from courseinfra.services.enrolments.handlers import (
    DEFAULT_MODE,
    BatchExists,
    BatchNotFound,
    CourseNotFound,
    EnrolmentClosed,
    EnrolmentNotFound,
    InvalidBatch,
    create_batch,
    enrol,
    unenrol,
)
from courseinfra.services.enrolments.ports import BatchProgress
from courseinfra.services.enrolments.queries import (
    activity,
    audit_events,
    batch_enrolments,
    batch_progress,
    get_batch,
    get_enrolment,
    list_batches,
    user_enrolments,
)

__all__ = [
    "DEFAULT_MODE",
    "BatchExists",
    "BatchNotFound",
    "BatchProgress",
    "CourseNotFound",
    "EnrolmentClosed",
    "EnrolmentNotFound",
    "InvalidBatch",
    "activity",
    "audit_events",
    "batch_enrolments",
    "batch_progress",
    "create_batch",
    "enrol",
    "get_batch",
    "get_enrolment",
    "list_batches",
    "unenrol",
    "user_enrolments",
]
