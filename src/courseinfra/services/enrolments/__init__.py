"""Enrolments: course batches, enrolling and unenrolling, and what a learner's enrolment holds."""

from courseinfra.services.enrolments.handlers import (
    DEFAULT_MODE,
    BatchExists,
    BatchNotFound,
    CourseNotFound,
    EnrolmentClosed,
    EnrolmentNotFound,
    InvalidBatch,
    activity,
    audit_events,
    create_batch,
    enrol,
    get_enrolment,
    unenrol,
)

__all__ = [
    "DEFAULT_MODE",
    "BatchExists",
    "BatchNotFound",
    "CourseNotFound",
    "EnrolmentClosed",
    "EnrolmentNotFound",
    "InvalidBatch",
    "activity",
    "audit_events",
    "create_batch",
    "enrol",
    "get_enrolment",
    "unenrol",
]
