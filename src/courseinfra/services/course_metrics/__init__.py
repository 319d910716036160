"""Course metrics: the aggregator of learners' progress, unit completion and AUDIT events, and its
recomputation."""

from courseinfra.services.course_metrics.job import (
    JOB_NAME,
    AUDIT_EVENTS,
    CERTIFICATE_REQUESTS,
    DB_READS,
    DB_WRITES,
    CACHE_HITS,
    CACHE_MISSES,
    ENROLMENTS_UPDATED,
    CourseViews,
    CourseMetricsJob,
    write_aggregations,
    recompute_course,
    CourseNotRecomputable,
    Recomputed,
    recompute_enrolments,
    WAITING_FOR_PUBLICATION,
    unpublished_course_failures,
    relation_cache_updated_handler,
)

__all__ = [
    "AUDIT_EVENTS",
    "CACHE_HITS",
    "CACHE_MISSES",
    "CERTIFICATE_REQUESTS",
    "CourseMetricsJob",
    "CourseNotRecomputable",
    "CourseViews",
    "DB_READS",
    "DB_WRITES",
    "ENROLMENTS_UPDATED",
    "JOB_NAME",
    "Recomputed",
    "WAITING_FOR_PUBLICATION",
    "recompute_course",
    "recompute_enrolments",
    "relation_cache_updated_handler",
    "unpublished_course_failures",
    "write_aggregations",
]
