"""The relation cache updater: on a post-publish event, rebuild the published root's relation cache."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from courseinfra.domain.cache_layout import CacheLayout, cache_entries
from courseinfra.domain.errors import InvalidHierarchy
from courseinfra.domain.events import RelationCacheUpdated
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE, compute_relations, parse_hierarchy
from courseinfra.domain.job_requests import (
    POST_PUBLISH_ACTIONS,
    Outcome,
    Rejection,
    RelationCacheRequest,
    event_action,
    read_relation_cache_request,
)
from courseinfra.services.cache.ports import RelationCache
from courseinfra.services.events.jobs import EventResult, IncomingEvent, count_result
from courseinfra.services.events.ports import JobCounters
from courseinfra.services.unit_of_work import UnitOfWork

JOB_NAME = "relation-cache-updater"
CACHE_WRITES = "cache-writes"
CACHE_DELETES = "cache-deletes"
DB_READS = "db-reads"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: computing a large course allocates hundreds of thousands of
    small containers and no cycles, and the collector's passes over them cost a third of the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def update_relation_cache(
    request: RelationCacheRequest,
    uow: UnitOfWork,
    cache: RelationCache,
    layout: CacheLayout,
    counters: JobCounters,
) -> RelationCacheUpdated | Rejection:
    """Replace the cache of ``request.identifier`` with the relations of its stored hierarchy.

    Rejects (failed) a root the store does not have or whose hierarchy is invalid; the cache is then
    left as it was.
    """
    with uow:
        stored = uow.hierarchies.get(request.identifier)
        counters.inc(DB_READS)
    if stored is None:
        return Rejection(
            Outcome.FAILED, "hierarchy-not-found", f"no hierarchy is stored for {request.identifier}"
        )
    try:
        with gc_paused():
            relations = compute_relations(parse_hierarchy(stored.hierarchy, max_depth=None))
            entries = cache_entries(relations, layout)
    except InvalidHierarchy as error:
        return Rejection(Outcome.FAILED, error.code, f"{request.identifier}: {error}")
    result = cache.replace_owned(relations.root_id, entries)
    counters.inc(CACHE_WRITES, result.written)
    counters.inc(CACHE_DELETES, result.deleted)
    updated = RelationCacheUpdated(
        root_id=relations.root_id,
        leaf_count=len(relations.ancestors),
        keys_written=result.written,
        keys_deleted=result.deleted,
    )
    with uow:
        uow.record(updated)
        uow.commit()
    return updated


@dataclass
class RelationCacheJob:
    """The job behind :func:`update_relation_cache`, fed by ingest, the bus and replays."""

    uow_factory: Callable[[], UnitOfWork]
    cache: RelationCache
    layout: CacheLayout
    name: str = JOB_NAME

    def accepts(self, event: Mapping[str, Any]) -> bool:
        return event_action(event) in POST_PUBLISH_ACTIONS

    def process(self, events: Sequence[IncomingEvent], counters: JobCounters) -> list[EventResult]:
        results = []
        for incoming in events:
            request = read_relation_cache_request(incoming.event)
            if isinstance(request, RelationCacheRequest):
                outcome = update_relation_cache(
                    request, self.uow_factory(), self.cache, self.layout, counters
                )
            else:
                outcome = request
            result = (
                EventResult.rejected(self.name, outcome)
                if isinstance(outcome, Rejection)
                else EventResult(self.name, Outcome.PROCESSED)
            )
            count_result(counters, result)
            results.append(result)
        return results


def rebuild_requests(roots: Iterable[str]) -> Iterator[str]:
    """One ``relation-cache-update`` job request (a JSON line) per root, for :func:`ingest`: a rebuild is
    an ingest, so it is counted, and a root that fails is kept and replayable like any event."""
    for root in roots:
        edata = {"action": "relation-cache-update", "identifier": root, "mimeType": COLLECTION_MIME_TYPE}
        yield orjson.dumps({"eid": "BE_JOB_REQUEST", "edata": edata}).decode()


def published_roots(uow_factory: Callable[[], UnitOfWork], page: int = 1000) -> Iterator[str]:
    """Every published root, paged so that a large store is never read at once."""
    after = ""
    while True:
        with uow_factory() as uow:
            ids = uow.hierarchies.published_ids(after=after, limit=page)
        yield from ids
        if len(ids) < page:
            return
        after = ids[-1]
