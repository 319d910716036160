"""Enrolments: course batches, enrolling and unenrolling, and what a learner's enrolment holds."""

from courseinfra.services.enrolments.handlers import (
    BatchExists,
    BatchNotFound,
    CourseNotFound,
    EnrolmentNotFound,
    EnrolmentClosed,
    InvalidBatch,
    DEFAULT_MODE,
    create_batch,
    enrol,
    unenrol,
)
from courseinfra.services.enrolments.queries import (
    get_batch,
    list_batches,
    batch_enrolments,
    user_enrolments,
    get_enrolment,
    activity,
    audit_events,
)

__all__ = [
    "BatchExists",
    "BatchNotFound",
    "CourseNotFound",
    "DEFAULT_MODE",
    "EnrolmentClosed",
    "EnrolmentNotFound",
    "InvalidBatch",
    "activity",
    "audit_events",
    "batch_enrolments",
    "create_batch",
    "enrol",
    "get_batch",
    "get_enrolment",
    "list_batches",
    "unenrol",
    "user_enrolments",
]
