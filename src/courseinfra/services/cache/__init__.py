"""The relation cache: the job that writes each published course's leaf nodes and ancestors."""

from courseinfra.services.cache.job import (
    JOB_NAME,
    CACHE_WRITES,
    CACHE_DELETES,
    DB_READS,
    gc_paused,
    update_relation_cache,
    RelationCacheJob,
    rebuild_requests,
    published_roots,
)

__all__ = [
    "CACHE_DELETES",
    "CACHE_WRITES",
    "DB_READS",
    "JOB_NAME",
    "RelationCacheJob",
    "gc_paused",
    "published_roots",
    "rebuild_requests",
    "update_relation_cache",
]
