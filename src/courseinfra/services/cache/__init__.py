"""The relation cache: the job that writes each published course's leaf nodes and ancestors."""

from courseinfra.services.cache.job import (
    CACHE_DELETES,
    CACHE_WRITES,
    DB_READS,
    JOB_NAME,
    RelationCacheJob,
    gc_paused,
    published_roots,
    rebuild_requests,
    update_relation_cache,
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
