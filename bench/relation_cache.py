"""Benchmark of the relation cache updater: compute the relations of a course, then write them.

Run as ``.venv/bin/python bench/relation_cache.py [--sizes 1000,10000,100000] [--markdown]``. For each
size a deterministic course hierarchy of that many node occurrences is generated, then measured with
``time.perf_counter`` in this one process (best and median of ``--repeat`` runs, GC enabled as in
production):

- *compute*: ``parse_hierarchy`` + ``compute_relations`` + ``cache_entries(..., CacheLayout.NATIVE)``,
  starting from an already-decoded dict (JSON decoding is excluded; its cost is reported apart);
- *naive compute*: the same result obtained by walking the tree again from the root for every node,
  checked equal to the real one; quadratic, so only run up to ``--naive-max`` nodes;
- *SQLite write*: ``SqliteRelationCache.replace_owned`` into a fresh file (first write), then the same
  entries again (republish); against a plain ``executemany`` INSERT of the same rows into a bare table;
- *Redis write*: ``RedisRelationCache.replace_owned`` into an empty database (first write), then again
  (republish); against a plain non-transactional pipeline of DEL + SADD/RPUSH/SET per key.

The Redis database of ``--redis-url`` (db 14 by default) is a scratch database: it is FLUSHDB'd before,
between and after the runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import redis

from courseinfra.adapters.cache.redis import RedisRelationCache
from courseinfra.adapters.cache.sqlite import SqliteRelationCache
from courseinfra.domain.cache_layout import (
    CacheLayout,
    CacheList,
    CacheSet,
    CacheText,
    CacheValue,
    cache_entries,
)
from courseinfra.domain.hierarchy import (
    COLLECTION_MIME_TYPE,
    PARENT_VISIBILITY,
    CourseRelations,
    compute_relations,
    parse_hierarchy,
)
from courseinfra.services.cache import gc_paused

DEFAULT_SIZES = (1_000, 10_000, 100_000)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEFAULT_SEED = 20200706
NOT_RUN = "—"

T = TypeVar("T")

COLLECTION_SHARE = 0.10  # collections (root and units) among node occurrences; leaves are the rest
REUSED_SHARE = 0.03  # leaf occurrences that repeat a leaf already placed under another unit
OPTIONAL_SHARE = 0.02  # leaf relations marked relationalMetadata.optional
MAX_UNIT_DEPTH = 5
UNIT_DEPTH_WEIGHTS = (0.25, 0.35, 0.20, 0.12, 0.08)  # depth 1 to 5
LEAF_MIME_TYPES = (
    "application/pdf",
    "video/mp4",
    "video/x-youtube",
    "application/vnd.ekstep.ecml-archive",
    "application/vnd.ekstep.html-archive",
    "application/epub",
    "application/vnd.ekstep.h5p-archive",
)
CHANNEL = "b00bc992ef25f1a9a8d63291e20efc8d"
BLOB = "https://sunbirddev.blob.core.windows.net/sunbird-content-dev"


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneratedCourse:
    """A generated hierarchy and what it was built from."""

    hierarchy: dict[str, Any]
    nodes: int
    collections: int
    leaf_occurrences: int
    distinct_leaves: int
    reused_occurrences: int
    optional_relations: int


def _timestamp(rng: random.Random) -> str:
    """A Sunbird-style timestamp, e.g. ``2020-07-06T19:06:56.160+0000``."""
    return (
        f"2020-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
        f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}+0000"
    )


def _node(
    rng: random.Random, identifier: str, mime_type: str, visibility: str, name: str, content_type: str
) -> dict[str, Any]:
    """One node: identifier, mimeType, visibility, name and 8 metadata fields of realistic size."""
    if mime_type == COLLECTION_MIME_TYPE:
        url = f"{BLOB}/ecar_files/{identifier}/{name.lower().replace(' ', '-')}_{identifier}_1.0_spine.ecar"
    else:
        url = f"{BLOB}/content/{identifier}/artifact/{name.lower().replace(' ', '-')}.pdf"
    return {
        "identifier": identifier,
        "mimeType": mime_type,
        "visibility": visibility,
        "name": name,
        "channel": CHANNEL,
        "code": f"org.sunbird.{rng.getrandbits(40):010x}",
        "contentType": content_type,
        "createdOn": _timestamp(rng),
        "lastUpdatedOn": _timestamp(rng),
        "status": "Live",
        "versionKey": str(1590000000000 + rng.randrange(10**10)),
        "downloadUrl": url,
    }


def _identifier(index: int) -> str:
    """A 26-character Sunbird-like identifier, unique per index."""
    return f"do_113{index:020d}"


def generate_course(n_nodes: int, seed: int = DEFAULT_SEED) -> GeneratedCourse:
    """A deterministic course hierarchy of exactly ``n_nodes`` node occurrences.

    A root collection; units (collections, ``visibility: Parent``) nested 1 to 5 deep; leaves (PDF, video,
    ... with ``visibility: Default``) making ~90% of the occurrences, mostly under the deepest units;
    ~3% of leaf occurrences repeat a leaf already placed under another unit (a copy of the same node, as
    a decoded document has); ~2% of leaf relations carry ``relationalMetadata: {"optional": true}``.
    """
    if n_nodes < 10:
        raise ValueError("a generated course needs at least 10 nodes")
    rng = random.Random(seed * 1_000_003 + n_nodes)
    n_collections = max(2, round(n_nodes * COLLECTION_SHARE))
    n_units = n_collections - 1
    n_leaf_occurrences = n_nodes - n_collections
    n_reused = round(n_leaf_occurrences * REUSED_SHARE) if n_units >= 2 else 0
    n_distinct = n_leaf_occurrences - n_reused
    next_id = iter(range(10**12))

    root = _node(
        rng, _identifier(next(next_id)), COLLECTION_MIME_TYPE, "Default", "Benchmark Course", "Course"
    )
    root["children"] = []
    # Units, level by level: each picks a target depth, then a parent one level up (or the deepest level
    # that exists yet, so early units end up shallow and the later ones fill the deeper levels).
    levels: list[list[dict[str, Any]]] = [[root]]
    units: list[dict[str, Any]] = []
    has_subunits: set[str] = set()
    for number in range(1, n_units + 1):
        depth = rng.choices(range(1, MAX_UNIT_DEPTH + 1), weights=UNIT_DEPTH_WEIGHTS)[0]
        depth = min(depth, len(levels))
        parent = rng.choice(levels[depth - 1])
        unit = _node(
            rng,
            _identifier(next(next_id)),
            COLLECTION_MIME_TYPE,
            PARENT_VISIBILITY,
            f"Unit {number}",
            "CourseUnit",
        )
        unit["children"] = []
        parent["children"].append(unit)
        has_subunits.add(parent["identifier"])
        if depth == len(levels):
            levels.append([])
        levels[depth].append(unit)
        units.append(unit)
    innermost = [unit for unit in units if unit["identifier"] not in has_subunits]
    outer = [unit for unit in units if unit["identifier"] in has_subunits]

    def place(leaf: dict[str, Any], not_under: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append ``leaf`` (marked optional at random) under a unit other than ``not_under``."""
        while True:
            draw = rng.random()
            if draw < 0.85 or not outer:
                parent = rng.choice(innermost)
            elif draw < 0.99:
                parent = rng.choice(outer)
            else:
                parent = root
            if parent is not not_under:
                break
        if rng.random() < OPTIONAL_SHARE:
            leaf["relationalMetadata"] = {"optional": True}
        parent["children"].append(leaf)
        return parent

    placed: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for number in range(1, n_distinct + 1):
        leaf = _node(
            rng,
            _identifier(next(next_id)),
            rng.choice(LEAF_MIME_TYPES),
            "Default",
            f"Resource {number}",
            "Resource",
        )
        placed.append((leaf, place(leaf)))
    for _ in range(n_reused):
        original, first_parent = rng.choice(placed)
        copy = {key: value for key, value in original.items() if key != "relationalMetadata"}
        place(copy, not_under=first_parent)
    for collection in (root, *units):
        rng.shuffle(collection["children"])

    optional = sum(
        1
        for collection in (root, *units)
        for child in collection["children"]
        if "relationalMetadata" in child
    )
    return GeneratedCourse(
        hierarchy=root,
        nodes=n_collections + n_leaf_occurrences,
        collections=n_collections,
        leaf_occurrences=n_leaf_occurrences,
        distinct_leaves=n_distinct,
        reused_occurrences=n_reused,
        optional_relations=optional,
    )


# --------------------------------------------------------------------------------------------------
# The computation under test, and the naive baseline
# --------------------------------------------------------------------------------------------------


def compute(raw: Mapping[str, Any]) -> dict[str, CacheValue]:
    """What the updater does with a decoded hierarchy: parse, derive the relations, lay out the keys,
    with the garbage collector paused as :func:`update_relation_cache` pauses it."""
    with gc_paused():
        return cache_entries(compute_relations(parse_hierarchy(raw)), CacheLayout.NATIVE)


def _is_collection(node: Mapping[str, Any]) -> bool:
    """Whether ``node`` is a collection (the root or a unit)."""
    return node.get("mimeType") == COLLECTION_MIME_TYPE


def _find_collection(root: Mapping[str, Any], collection_id: str) -> Mapping[str, Any]:
    """Walk from the root, depth first, until the collection ``collection_id`` is found."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node["identifier"] == collection_id:
            return node
        stack.extend(child for child in node.get("children") or () if _is_collection(child))
    raise KeyError(collection_id)


def _leaves_below(collection: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """Every leaf below ``collection``, and those reached across an optional relation."""
    leaves: set[str] = set()
    optional: set[str] = set()
    stack: list[tuple[Mapping[str, Any], bool]] = [
        (child, False) for child in collection.get("children") or ()
    ]
    while stack:
        node, crossed = stack.pop()
        metadata = node.get("relationalMetadata")
        crossed = crossed or (isinstance(metadata, Mapping) and metadata.get("optional") is True)
        if _is_collection(node):
            stack.extend((child, crossed) for child in node.get("children") or ())
        else:
            leaves.add(node["identifier"])
            if crossed:
                optional.add(node["identifier"])
    return leaves, optional


def _paths_to(root: Mapping[str, Any], leaf_id: str) -> list[tuple[str, ...]]:
    """Walk the whole tree from the root; the collections from the root down to every occurrence of
    ``leaf_id``, in document order."""
    paths: list[tuple[str, ...]] = []
    path = [root["identifier"]]

    def walk(node: Mapping[str, Any]) -> None:
        for child in node.get("children") or ():
            if _is_collection(child):
                path.append(child["identifier"])
                walk(child)
                path.pop()
            elif child["identifier"] == leaf_id:
                paths.append(tuple(path))

    walk(root)
    return paths


def naive_relations(raw: Mapping[str, Any]) -> CourseRelations:
    """The relations of ``raw`` the naive way: for every collection, walk again from the root to find it
    and collect its leaves; for every leaf, walk the whole tree from the root to find all its paths.

    Quadratic in the number of nodes. Assumes a valid hierarchy (no validation).
    """
    root_id: str = raw["identifier"]
    collection_ids: list[str] = []
    leaf_ids: dict[str, None] = {}
    stack = [raw]
    while stack:  # one listing of the ids, in document order
        node = stack.pop()
        if _is_collection(node):
            collection_ids.append(node["identifier"])
            stack.extend(reversed(node.get("children") or ()))
        else:
            leaf_ids[node["identifier"]] = None
    leaf_nodes: dict[str, frozenset[str]] = {}
    optional_nodes: dict[str, frozenset[str]] = {}
    units: dict[str, Mapping[str, Any]] = {}
    for collection_id in collection_ids:
        collection = _find_collection(raw, collection_id)
        leaves, optional = _leaves_below(collection)
        if leaves:
            leaf_nodes[collection_id] = frozenset(leaves)
        if optional:
            optional_nodes[collection_id] = frozenset(optional)
        if (
            collection_id != root_id
            and collection.get("visibility") == PARENT_VISIBILITY
            and collection.get("children")
        ):
            units[collection_id] = {key: value for key, value in collection.items() if key != "children"}
    ancestors: dict[str, tuple[str, ...]] = {}
    for leaf_id in leaf_ids:
        nearest_first: dict[str, None] = {}
        for path in _paths_to(raw, leaf_id):
            for collection_id in reversed(path[1:]):
                nearest_first.setdefault(collection_id)
        ancestors[leaf_id] = (*nearest_first, root_id)
    return CourseRelations(
        root_id=root_id,
        leaf_nodes=leaf_nodes,
        optional_nodes=optional_nodes,
        ancestors=ancestors,
        units=units,
    )


def naive_compute(raw: Mapping[str, Any]) -> dict[str, CacheValue]:
    """The naive relations, laid out by the same :func:`cache_entries` as the real ones."""
    return cache_entries(naive_relations(raw), CacheLayout.NATIVE)


def require(condition: bool, message: str) -> None:
    """Raise :class:`AssertionError` with ``message`` unless ``condition`` (kept under ``python -O``)."""
    if not condition:
        raise AssertionError(message)


def check_naive(naive: Mapping[str, CacheValue], entries: Mapping[str, CacheValue]) -> None:
    """Require the naive entries to equal the real ones kind by kind: leaf sets, optional sets, ancestor
    lists (in order) and unit documents; the error names the kind and the first differing key."""
    for kind in ("leafnodes", "optionalnodes", "ancestors", "metadata"):
        suffix = f":{kind}"
        mine = {key: value for key, value in naive.items() if key.endswith(suffix)}
        real = {key: value for key, value in entries.items() if key.endswith(suffix)}
        if mine != real:
            first = next(key for key in sorted(mine.keys() | real.keys()) if mine.get(key) != real.get(key))
            raise AssertionError(f"naive {kind} differ from the real ones, first at key {first}")
    require(len(naive) == len(entries), "the naive computation writes other keys than the real one")


# --------------------------------------------------------------------------------------------------
# Raw store baselines
# --------------------------------------------------------------------------------------------------


def _encode_row(key: str, value: CacheValue) -> tuple[str, str, str]:
    """A row of the bare table: the key, its kind and its value as JSON text (or the text itself)."""
    match value:
        case CacheSet(members):
            return key, "set", orjson.dumps(sorted(members)).decode()
        case CacheList(items):
            return key, "list", orjson.dumps(list(items)).decode()
        case CacheText(text):
            return key, "text", text


def sqlite_raw_insert(path: Path, entries: Mapping[str, CacheValue]) -> float:
    """Seconds to encode ``entries`` and INSERT them with one ``executemany`` in one transaction into a
    bare key/kind/value table of a fresh file (same pragmas as the cache, no ownership bookkeeping)."""
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE bare (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL) WITHOUT ROWID"
        )
        gc.collect()
        start = time.perf_counter()
        rows = [_encode_row(key, value) for key, value in entries.items()]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO bare (key, kind, value) VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")
        elapsed = time.perf_counter() - start
        (count,) = db.execute("SELECT count(*) FROM bare").fetchone()
        require(count == len(entries), f"bare table holds {count} rows, expected {len(entries)}")
        return elapsed
    finally:
        db.close()


def redis_raw_pipeline(client: redis.Redis, entries: Mapping[str, CacheValue]) -> float:
    """Seconds to push ``entries`` through one non-transactional pipeline: DEL, then SADD, RPUSH or SET
    per key, with no bookkeeping and no atomicity. The database is flushed first (not timed)."""
    client.flushdb()
    gc.collect()
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for key, value in entries.items():
        pipe.delete(key)
        match value:
            case CacheSet(members):
                pipe.sadd(key, *members)
            case CacheList(items):
                pipe.rpush(key, *items)
            case CacheText(text):
                pipe.set(key, text)
    pipe.execute()
    elapsed = time.perf_counter() - start
    size = client.dbsize()
    require(size == len(entries), f"Redis holds {size} keys after the raw pipeline, expected {len(entries)}")
    return elapsed


# --------------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Timing:
    """Samples of one measurement, in seconds."""

    samples: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The fastest run."""
        return min(self.samples)

    @property
    def median(self) -> float:
        """The median run."""
        return statistics.median(self.samples)


@dataclass(slots=True)
class SizeResult:
    """Everything measured for one size."""

    course: GeneratedCourse
    keys: int
    keys_by_kind: dict[str, int]
    members: int
    json_bytes: int
    decode: Timing
    compute: Timing
    naive: Timing | None
    sqlite_first: Timing
    sqlite_republish: Timing
    sqlite_raw: Timing
    compute_no_gc: Timing
    redis_first: Timing | None
    redis_republish: Timing | None
    redis_raw: Timing | None
    redis_server_first: Timing | None
    redis_server_raw: Timing | None


def timed_call(run: Callable[[], T]) -> tuple[float, T]:
    """Seconds taken by ``run()``, after a full collection so that earlier garbage is not billed to it,
    and what it returned."""
    gc.collect()
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def timed(run: Callable[[], object]) -> float:
    """Seconds taken by ``run()``, after a full collection, its result dropped."""
    return timed_call(run)[0]


def timed_without_gc(run: Callable[[], object]) -> float:
    """Seconds taken by ``run()`` with the cyclic garbage collector paused (to tell its share apart)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        gc.enable()


SCRIPT_COMMANDS = ("evalsha", "eval")
RAW_COMMANDS = ("del", "sadd", "rpush", "set")


def server_seconds(client: redis.Redis, commands: Sequence[str]) -> float:
    """Seconds Redis has spent executing ``commands`` since its statistics were last reset, from INFO
    commandstats (instance-wide: commands of other clients count too)."""
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    return sum(stats.get(f"cmdstat_{command}", {}).get("usec", 0) for command in commands) / 1e6


def count_members(entries: Mapping[str, CacheValue]) -> int:
    """Set members plus list items plus one per text value: how many values a write puts in the store."""
    total = 0
    for value in entries.values():
        match value:
            case CacheSet(members):
                total += len(members)
            case CacheList(items):
                total += len(items)
            case CacheText():
                total += 1
    return total


def keys_by_kind(entries: Mapping[str, CacheValue]) -> dict[str, int]:
    """How many keys of each kind the native layout writes."""
    counts = {"leafnodes": 0, "optionalnodes": 0, "ancestors": 0, "metadata": 0}
    for key in entries:
        counts[key.rsplit(":", 1)[1]] += 1
    return counts


def measure_size(
    n_nodes: int,
    *,
    seed: int,
    repeat: int,
    naive_max: int,
    redis_url: str | None,
    workdir: Path,
    log: Callable[[str], None],
) -> SizeResult:
    """Generate a course of ``n_nodes`` nodes and measure every step on it ``repeat`` times."""
    course = generate_course(n_nodes, seed)
    encoded = orjson.dumps(course.hierarchy)
    raw = orjson.loads(encoded)  # what the updater gets from the store: a decoded document
    decode = Timing([timed(lambda: orjson.loads(encoded)) for _ in range(repeat)])
    log(f"{n_nodes} nodes: generated ({len(encoded) / 1e6:.1f} MB of JSON); compute")

    entries = compute(raw)
    root_id: str = raw["identifier"]
    compute_timing = Timing([timed(lambda: compute(raw)) for _ in range(repeat)])
    compute_no_gc = Timing([timed_without_gc(lambda: compute(raw)) for _ in range(repeat)])

    naive: Timing | None = None
    if n_nodes <= naive_max:
        log(f"{n_nodes} nodes: naive compute")
        naive = Timing()
        for _ in range(repeat):
            elapsed, naive_entries = timed_call(lambda: naive_compute(raw))
            naive.samples.append(elapsed)
            check_naive(naive_entries, entries)
            del naive_entries

    log(f"{n_nodes} nodes: SQLite")
    sqlite_first, sqlite_republish, sqlite_raw = Timing(), Timing(), Timing()
    for run in range(repeat):
        rundir = workdir / f"{n_nodes}-{run}"
        cache = SqliteRelationCache(rundir / "cache.sqlite3")
        try:
            sqlite_first.samples.append(timed(lambda c=cache: c.replace_owned(root_id, entries)))
            sqlite_republish.samples.append(timed(lambda c=cache: c.replace_owned(root_id, entries)))
            if run == 0:
                owned = cache.owned_keys(root_id)
                require(owned == frozenset(entries), "the SQLite cache does not own exactly the entries")
        finally:
            cache.close()
        sqlite_raw.samples.append(sqlite_raw_insert(rundir / "bare.sqlite3", entries))
        shutil.rmtree(rundir)

    redis_first: Timing | None = None
    redis_republish: Timing | None = None
    redis_raw: Timing | None = None
    redis_server_first: Timing | None = None
    redis_server_raw: Timing | None = None
    if redis_url is not None:
        log(f"{n_nodes} nodes: Redis")
        redis_first, redis_republish, redis_raw = Timing(), Timing(), Timing()
        redis_server_first, redis_server_raw = Timing(), Timing()
        raw_client = redis.Redis.from_url(redis_url)
        relation_cache = RedisRelationCache.from_url(redis_url)
        try:
            for run in range(repeat):
                raw_client.flushdb()
                before = server_seconds(raw_client, SCRIPT_COMMANDS)
                redis_first.samples.append(timed(lambda: relation_cache.replace_owned(root_id, entries)))
                redis_server_first.samples.append(server_seconds(raw_client, SCRIPT_COMMANDS) - before)
                redis_republish.samples.append(timed(lambda: relation_cache.replace_owned(root_id, entries)))
                if run == 0:
                    size = raw_client.dbsize()
                    # the entries plus the bookkeeping: the owner's manifest, the claims and the owners
                    require(size == len(entries) + 3, f"Redis holds {size} keys, expected {len(entries) + 3}")
                before = server_seconds(raw_client, RAW_COMMANDS)
                redis_raw.samples.append(redis_raw_pipeline(raw_client, entries))
                redis_server_raw.samples.append(server_seconds(raw_client, RAW_COMMANDS) - before)
            raw_client.flushdb()
        finally:
            relation_cache.close()
            raw_client.close()

    return SizeResult(
        course=course,
        keys=len(entries),
        keys_by_kind=keys_by_kind(entries),
        members=count_members(entries),
        json_bytes=len(encoded),
        decode=decode,
        compute=compute_timing,
        naive=naive,
        sqlite_first=sqlite_first,
        sqlite_republish=sqlite_republish,
        sqlite_raw=sqlite_raw,
        compute_no_gc=compute_no_gc,
        redis_first=redis_first,
        redis_republish=redis_republish,
        redis_raw=redis_raw,
        redis_server_first=redis_server_first,
        redis_server_raw=redis_server_raw,
    )


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds with one decimal, or the not-run mark."""
    return NOT_RUN if seconds is None else f"{seconds * 1000:,.1f}"


def per_unit_us(seconds: float | None, count: int) -> str:
    """Microseconds per unit (node, key, ...) with two decimals, or the not-run mark."""
    return NOT_RUN if seconds is None else f"{seconds * 1e6 / count:.2f}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    """A table as markdown (numbers right-aligned) or as aligned plain text."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main_rows(results: Sequence[SizeResult], pick: Callable[[Timing], float]) -> list[list[str]]:
    """The rows of the main table, with ``pick`` (best or median) applied to every timing."""
    rows = []
    for result in results:

        def value(timing: Timing | None) -> float | None:
            return None if timing is None else pick(timing)

        compute_s = pick(result.compute)
        naive_s = value(result.naive)
        if result.naive is None:
            naive_cell, speedup = f"{NOT_RUN} (quadratic, not run)", NOT_RUN
        else:
            naive_cell, speedup = ms(naive_s), f"{naive_s / compute_s:,.0f}x"
        rows.append(
            [
                f"{result.course.nodes:,}",
                f"{result.keys:,}",
                ms(compute_s),
                naive_cell,
                speedup,
                ms(value(result.sqlite_first)),
                ms(value(result.sqlite_raw)),
                ms(value(result.redis_first)),
                ms(value(result.redis_raw)),
            ]
        )
    return rows


MAIN_HEADERS = (
    "nodes",
    "keys",
    "compute (ms)",
    "naive compute (ms)",
    "speed-up",
    "SQLite write (ms)",
    "SQLite raw insert (ms)",
    "Redis write (ms)",
    "Redis raw pipeline (ms)",
)


def report(
    results: Sequence[SizeResult], args: argparse.Namespace, redis_version: str | None, wall: float
) -> str:
    """The whole report: environment, the main table (best, then median), shapes, details and goals."""
    markdown: bool = args.markdown
    out: list[str] = []
    heading = "## " if markdown else ""
    now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
    out.append(f"{heading}Relation cache updater benchmark")
    out.append("")
    out.append(
        f"- date: {now}\n"
        f"- Python {platform.python_version()} ({platform.python_implementation()}), {platform.platform()}\n"
        f"- redis-server {redis_version or 'not used (--no-redis)'}"
        f"{'' if redis_version is None else f' at {args.redis_url}'}, redis-py {redis.__version__}, "
        f"SQLite {sqlite3.sqlite_version}\n"
        f"- CPU count: {os.cpu_count()}, load average at the end: "
        f"{', '.join(f'{load:.2f}' for load in os.getloadavg())}\n"
        f"- best of {args.repeat} runs (time.perf_counter) in one process, GC enabled, collected before each "
        "run; compute starts from an already-decoded dict (JSON decoding excluded, shown apart below); "
        "writes are first writes into an empty store, in the native layout"
    )
    out.append("")
    out.append(render_table(MAIN_HEADERS, main_rows(results, lambda t: t.best), markdown))
    out.append("")
    out.append(f"Median of the same {args.repeat} runs:")
    out.append("")
    out.append(render_table(MAIN_HEADERS, main_rows(results, lambda t: t.median), markdown))
    out.append("")
    out.append("Shape of the generated courses and of what is written:")
    out.append("")
    shape_headers = (
        "nodes",
        "collections",
        "leaf occurrences",
        "distinct leaves",
        "reused occurrences",
        "optional relations",
        "keys (leafnodes/optionalnodes/ancestors/metadata)",
        "members written",
        "JSON (MB)",
        "orjson.loads (ms)",
    )
    shape_rows = [
        [
            f"{r.course.nodes:,}",
            f"{r.course.collections:,}",
            f"{r.course.leaf_occurrences:,}",
            f"{r.course.distinct_leaves:,}",
            f"{r.course.reused_occurrences:,}",
            f"{r.course.optional_relations:,}",
            f"{r.keys:,} ({'/'.join(f'{n:,}' for n in r.keys_by_kind.values())})",
            f"{r.members:,}",
            f"{r.json_bytes / 1e6:.1f}",
            ms(r.decode.best),
        ]
        for r in results
    ]
    out.append(render_table(shape_headers, shape_rows, markdown))
    out.append("")
    out.append("Republish (the same entries again, a replace) and cost per unit, best runs:")
    out.append("")
    detail_headers = (
        "nodes",
        "SQLite republish (ms)",
        "Redis republish (ms)",
        "Redis write: server (ms)",
        "Redis raw: server (ms)",
        "compute, GC paused (ms)",
        "compute (µs/node)",
        "SQLite write (µs/key)",
        "Redis write (µs/key)",
        "Redis write (µs/member)",
        "Redis raw (µs/member)",
    )
    detail_rows = [
        [
            f"{r.course.nodes:,}",
            ms(r.sqlite_republish.best),
            ms(None if r.redis_republish is None else r.redis_republish.best),
            ms(None if r.redis_server_first is None else r.redis_server_first.best),
            ms(None if r.redis_server_raw is None else r.redis_server_raw.best),
            ms(r.compute_no_gc.best),
            per_unit_us(r.compute.best, r.course.nodes),
            per_unit_us(r.sqlite_first.best, r.keys),
            per_unit_us(None if r.redis_first is None else r.redis_first.best, r.keys),
            per_unit_us(None if r.redis_first is None else r.redis_first.best, r.members),
            per_unit_us(None if r.redis_raw is None else r.redis_raw.best, r.members),
        ]
        for r in results
    ]
    out.append(render_table(detail_headers, detail_rows, markdown))
    out.append("")
    notes = [
        f"naive compute: walks the tree again from the root for every node; checked to give the same "
        f"leaf sets, optional sets, ancestors and units; quadratic, not run above --naive-max "
        f"{args.naive_max:,} nodes",
        "SQLite raw insert: encode the same rows, one executemany INSERT into a bare table in one "
        "transaction (WAL, synchronous=NORMAL as the cache); no ownership bookkeeping",
        "Redis raw pipeline: DEL + SADD/RPUSH/SET per key in one pipeline (transaction=False); "
        "no bookkeeping, no atomicity; it measures the redis-py client as much as Redis",
        "server (ms): time Redis spent executing the commands (EVALSHA, or DEL/SADD/RPUSH/SET), from "
        "INFO commandstats deltas; the rest of a write is the client (building and packing the "
        "command, socket I/O)",
        "compute, GC paused: the same compute with the cyclic garbage collector disabled, to show its share",
    ]
    if redis_version is None:
        notes.append("Redis: not run (--no-redis)")
    out += [f"- {note}" for note in notes]
    goal = next((r for r in results if r.course.nodes == 100_000), None)
    if goal is not None:
        out.append("")
        compute_ok = goal.compute.best < 1.0
        out.append(
            f"- goal, 100k nodes computed in under 1 s: {ms(goal.compute.best)} ms, "
            f"{'met' if compute_ok else 'MISSED'}"
        )
        if goal.redis_first is not None:
            redis_ok = goal.redis_first.best < 2.0
            out.append(
                f"- goal, 100k nodes written to Redis in under 2 s: {ms(goal.redis_first.best)} ms, "
                f"{'met' if redis_ok else 'MISSED'}"
            )
    out.append("")
    out.append(f"Wall time of the whole run: {wall:.1f} s")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    """``1000,10000,100000`` (underscores allowed) as a list of ints, each at least 10."""
    try:
        sizes = [int(part.strip().replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not sizes or min(sizes) < 10:
        raise argparse.ArgumentTypeError("give comma-separated sizes of at least 10 nodes")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark of the relation cache updater (compute, SQLite and Redis writes).",
        epilog="The Redis database of --redis-url is a scratch database: it is FLUSHDB'd before, during "
        "and after the run.",
    )
    parser.add_argument(
        "--sizes", type=parse_sizes, default=list(DEFAULT_SIZES), help="comma-separated node counts"
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help=f"default {DEFAULT_REDIS_URL}")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis measurements")
    parser.add_argument(
        "--naive-max", type=int, default=10_000, help="largest size the quadratic baseline runs on"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


@dataclass(slots=True)
class ScratchRedis:
    """The scratch Redis database: checked reachable, flushed on entry and on exit."""

    url: str
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(self.url, socket_connect_timeout=3)

    def version(self) -> str:
        """``redis_version`` from INFO server; raises ``redis.ConnectionError`` when unreachable."""
        info: dict[str, Any] = self.client.info("server")  # type: ignore[assignment]
        return str(info["redis_version"])

    def __enter__(self) -> ScratchRedis:
        self.client.flushdb()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.flushdb()
        finally:
            self.client.close()


def run(args: argparse.Namespace, redis_version: str | None) -> list[SizeResult]:
    """Measure every size in a temporary directory."""
    started = time.perf_counter()

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="courseinfra-bench-") as tmp:
        return [
            measure_size(
                size,
                seed=args.seed,
                repeat=args.repeat,
                naive_max=args.naive_max,
                redis_url=None if redis_version is None else args.redis_url,
                workdir=Path(tmp),
                log=log,
            )
            for size in args.sizes
        ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; 2 when Redis is unreachable and not skipped."""
    args = parse_args(argv)
    started = time.perf_counter()
    if args.no_redis:
        results = run(args, None)
        redis_version = None
    else:
        scratch = ScratchRedis(args.redis_url)
        try:
            redis_version = scratch.version()
        except redis.RedisError as error:
            print(
                f"error: Redis is unreachable at {args.redis_url}: {error}\n"
                "Start Redis, point --redis-url at it, or pass --no-redis to skip the Redis measurements.",
                file=sys.stderr,
            )
            return 2
        with scratch:
            results = run(args, redis_version)
    print(report(results, args, redis_version, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
