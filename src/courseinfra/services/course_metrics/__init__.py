"""Course metrics: the aggregator of learners' progress, unit completion and AUDIT events, and its
recomputation."""

from courseinfra.services.course_metrics.job import (
    AUDIT_EVENTS,
    CACHE_HITS,
    CACHE_MISSES,
    CERTIFICATE_REQUESTS,
    DB_READS,
    DB_WRITES,
    ENROLMENTS_UPDATED,
    JOB_NAME,
    WAITING_FOR_PUBLICATION,
    CourseMetricsJob,
    CourseNotRecomputable,
    CourseViews,
    Recomputed,
    recompute_course,
    recompute_enrolments,
    relation_cache_updated_handler,
    unpublished_course_failures,
    write_aggregations,
)

__all__ = [
    "AUDIT_EVENTS",
    "CACHE_HITS",
    "CACHE_MISSES",
    "CERTIFICATE_REQUESTS",
    "DB_READS",
    "DB_WRITES",
    "ENROLMENTS_UPDATED",
    "JOB_NAME",
    "WAITING_FOR_PUBLICATION",
    "CourseMetricsJob",
    "CourseNotRecomputable",
    "CourseViews",
    "Recomputed",
    "recompute_course",
    "recompute_enrolments",
    "relation_cache_updated_handler",
    "unpublished_course_failures",
    "write_aggregations",
]
