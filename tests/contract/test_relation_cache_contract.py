"""One contract for every relation cache: in-memory, the embedded SQLite file, and Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from courseinfra.adapters.cache.memory import InMemoryRelationCache
from courseinfra.adapters.cache.redis import RedisRelationCache
from courseinfra.adapters.cache.sqlite import SqliteRelationCache
from courseinfra.domain.cache_layout import CacheList, CacheSet, CacheText
from courseinfra.services.cache.ports import RelationCache, ReplaceResult
from tests.support.servers import clear_redis


class RelationCacheContract:
    """Subclasses provide the ``cache`` fixture."""

    def test_absent_key_reads_none(self, cache: RelationCache) -> None:
        assert cache.get("nothing:here") is None

    def test_values_come_back_with_their_kind(self, cache: RelationCache) -> None:
        ordered = tuple(f"unit{i}" for i in (3, 1, 2))
        cache.replace_owned(
            "course",
            {"s": CacheSet(frozenset({"a", "b"})), "l": CacheList(ordered), "t": CacheText('{"x": 1}')},
        )
        assert cache.get("s") == CacheSet(frozenset({"a", "b"}))
        assert cache.get("l") == CacheList(ordered)
        assert cache.get("t") == CacheText('{"x": 1}')

    def test_large_values_are_written_whole(self, cache: RelationCache) -> None:
        members = frozenset(f"do_{i}" for i in range(2500))
        items = tuple(f"do_{i}" for i in reversed(range(2500)))
        cache.replace_owned("big", {"big:leafnodes": CacheSet(members), "big:r:ancestors": CacheList(items)})
        assert cache.get("big:leafnodes") == CacheSet(members)
        assert cache.get("big:r:ancestors") == CacheList(items)

    def test_replace_deletes_what_the_owner_no_longer_has(self, cache: RelationCache) -> None:
        first = cache.replace_owned(
            "course",
            {"u1:leafnodes": CacheSet(frozenset({"r1"})), "u2:leafnodes": CacheSet(frozenset({"r2"}))},
        )
        assert first == ReplaceResult(written=2, deleted=0)
        second = cache.replace_owned("course", {"u1:leafnodes": CacheSet(frozenset({"r1", "r3"}))})
        assert second == ReplaceResult(written=1, deleted=1)
        assert cache.get("u2:leafnodes") is None
        assert cache.get("u1:leafnodes") == CacheSet(frozenset({"r1", "r3"}))
        assert cache.owned_keys("course") == frozenset({"u1:leafnodes"})

    def test_replace_never_merges_old_members(self, cache: RelationCache) -> None:
        cache.replace_owned(
            "course", {"k": CacheSet(frozenset({"old1", "old2"})), "l": CacheList(("a", "b"))}
        )
        cache.replace_owned("course", {"k": CacheSet(frozenset({"new"})), "l": CacheList(("c",))})
        assert cache.get("k") == CacheSet(frozenset({"new"}))
        assert cache.get("l") == CacheList(("c",))

    def test_empty_replacement_removes_everything_of_the_owner(self, cache: RelationCache) -> None:
        cache.replace_owned("course", {"a": CacheText("1"), "b": CacheText("2")})
        assert cache.replace_owned("course", {}) == ReplaceResult(written=0, deleted=2)
        assert cache.get_many(["a", "b"]) == {"a": None, "b": None}
        assert cache.owned_keys("course") == frozenset()

    def test_a_key_claimed_by_two_owners_lives_until_both_let_go(self, cache: RelationCache) -> None:
        shared = {"shared:leafnodes": CacheSet(frozenset({"r"}))}
        cache.replace_owned("course-a", shared)
        cache.replace_owned("course-b", shared)
        assert cache.replace_owned("course-a", {}).deleted == 0
        assert cache.get("shared:leafnodes") == CacheSet(frozenset({"r"}))
        assert cache.replace_owned("course-b", {}).deleted == 1
        assert cache.get("shared:leafnodes") is None

    def test_other_owners_are_untouched(self, cache: RelationCache) -> None:
        cache.replace_owned("a", {"a:1": CacheText("x")})
        cache.replace_owned("b", {"b:1": CacheText("y")})
        cache.replace_owned("a", {"a:2": CacheText("z")})
        assert cache.get("b:1") == CacheText("y")
        assert cache.owned_keys("b") == frozenset({"b:1"})

    def test_get_many_keeps_order_and_absence(self, cache: RelationCache) -> None:
        cache.replace_owned("o", {"x": CacheText("1"), "y": CacheSet(frozenset({"m"}))})
        assert cache.get_many(["y", "missing", "x"]) == {
            "y": CacheSet(frozenset({"m"})),
            "missing": None,
            "x": CacheText("1"),
        }

    def test_clear_removes_all_keys(self, cache: RelationCache) -> None:
        cache.replace_owned("o", {"x": CacheText("1")})
        cache.clear()
        assert cache.get("x") is None
        assert cache.owned_keys("o") == frozenset()

    def test_a_reader_never_sees_a_mix_of_two_publications(self, cache: RelationCache) -> None:
        old = CacheSet(frozenset(f"old{i}" for i in range(1500)))
        new = CacheSet(frozenset(f"new{i}" for i in range(1500)))
        cache.replace_owned("course", {"course:leafnodes": old})
        stop = threading.Event()
        seen: list[object] = []

        def read() -> None:
            while not stop.is_set():
                seen.append(cache.get("course:leafnodes"))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for round_ in range(40):
                cache.replace_owned("course", {"course:leafnodes": new if round_ % 2 == 0 else old})
        finally:
            stop.set()
            reader.join()
        assert seen
        assert all(value in (old, new) for value in seen), "a read saw a partial or missing set"


class TestInMemoryRelationCache(RelationCacheContract):
    @pytest.fixture
    def cache(self) -> RelationCache:
        return InMemoryRelationCache()


class TestSqliteRelationCache(RelationCacheContract):
    @pytest.fixture
    def cache(self, tmp_path: Path) -> Iterator[RelationCache]:
        cache = SqliteRelationCache(tmp_path / "cache.sqlite3")
        yield cache
        cache.close()

    def test_another_process_handle_sees_the_same_cache(self, tmp_path: Path) -> None:
        writer = SqliteRelationCache(tmp_path / "shared.sqlite3")
        reader = SqliteRelationCache(tmp_path / "shared.sqlite3")
        writer.replace_owned("o", {"k": CacheList(("a", "b"))})
        assert reader.get("k") == CacheList(("a", "b"))
        writer.close()
        reader.close()


class TestRedisRelationCache(RelationCacheContract):
    @pytest.fixture
    def cache(self, redis_client: redis.Redis) -> Iterator[RelationCache]:
        clear_redis(redis_client)
        cache = RedisRelationCache(redis_client)
        yield cache
        clear_redis(redis_client)

    def test_values_are_native_redis_types(self, cache: RelationCache, redis_client: redis.Redis) -> None:
        cache.replace_owned(
            "c", {"s": CacheSet(frozenset({"a"})), "l": CacheList(("x", "y")), "t": CacheText("v")}
        )
        assert (redis_client.type("s"), redis_client.type("l"), redis_client.type("t")) == (
            "set",
            "list",
            "string",
        )
        assert redis_client.lrange("l", 0, -1) == ["x", "y"]
