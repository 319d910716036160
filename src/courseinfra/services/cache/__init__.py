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
from courseinfra.services.cache.queries import course_cache_tree, owned_entries

__all__ = [
    "CACHE_DELETES",
    "CACHE_WRITES",
    "DB_READS",
    "JOB_NAME",
    "RelationCacheJob",
    "course_cache_tree",
    "gc_paused",
    "owned_entries",
    "published_roots",
    "rebuild_requests",
    "update_relation_cache",
]
