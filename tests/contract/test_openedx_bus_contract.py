"""One contract for the Open edX event bus as a consumer group reads it: Redis Streams (what
edx-event-bus-redis writes) and the embedded SQLite file."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from courseinfra.adapters.openedx_bus.streams import RedisOpenedxBus, SqliteOpenedxBus
from courseinfra.services.openedx.ports import BusEntry, BusUnavailable, OpenedxBus
from tests.support.cli import COURSEINFRA
from tests.support.servers import clear_redis

COHORTS = "dev-learning-cohort-membership"
ENROLMENTS = "dev-learning-course-enrollment-lifecycle"

#: A bus handle of a group and consumer, on the same streams (as another process would have).
Open = Callable[[str, str], OpenedxBus]


def fields(number: int) -> dict[str, bytes | str]:
    return {"type": "org.openedx.test.v1", "id": f"id-{number}", "event_data": bytes([0, number, 255])}


def ids(entries: list[BusEntry]) -> list[str]:
    return [entry.fields["id"].decode() for entry in entries]


class OpenedxBusContract:
    """Subclasses provide ``open_bus``."""

    def test_entries_come_in_order_once_and_not_again_after_ack(self, open_bus: Open) -> None:
        bus = open_bus("courseinfra", "c1")
        for number in (1, 2, 3):
            bus.send(COHORTS, fields(number))
        entries = bus.read([COHORTS], count=2)
        assert ids(entries) == ["id-1", "id-2"]
        assert entries[0].fields["event_data"] == bytes([0, 1, 255])
        assert entries[0].stream == COHORTS
        assert bus.pending(COHORTS) == 2
        bus.ack(entries)
        assert ids(bus.read([COHORTS])) == ["id-3"]
        assert bus.pending(COHORTS) == 1
        bus.ack(bus.read([COHORTS]))
        assert bus.read([COHORTS]) == []
        assert bus.pending(COHORTS) == 0

    def test_a_consumer_that_stopped_before_ack_gets_its_entries_again(self, open_bus: Open) -> None:
        first = open_bus("courseinfra", "c1")
        first.send(COHORTS, fields(1))
        first.send(COHORTS, fields(2))
        assert ids(first.read([COHORTS])) == ["id-1", "id-2"]
        first.close()
        again = open_bus("courseinfra", "c1")
        redelivered = again.read([COHORTS])
        assert ids(redelivered) == ["id-1", "id-2"]
        again.ack(redelivered[:1])
        assert ids(again.read([COHORTS])) == ["id-2"]

    def test_consumers_of_a_group_share_the_entries_and_groups_each_get_all(self, open_bus: Open) -> None:
        one, two, other = (
            open_bus("courseinfra", "c1"),
            open_bus("courseinfra", "c2"),
            open_bus("audit", "a1"),
        )
        for number in range(1, 5):
            one.send(ENROLMENTS, fields(number))
        mine = one.read([ENROLMENTS], count=3)
        theirs = two.read([ENROLMENTS], count=3)
        assert ids(mine) == ["id-1", "id-2", "id-3"]
        assert ids(theirs) == ["id-4"]
        assert ids(other.read([ENROLMENTS], count=10)) == ["id-1", "id-2", "id-3", "id-4"]

    def test_an_idle_consumers_entries_are_claimed_by_another(self, open_bus: Open) -> None:
        dead, alive = open_bus("courseinfra", "dead"), open_bus("courseinfra", "alive")
        dead.send(COHORTS, fields(1))
        assert ids(dead.read([COHORTS])) == ["id-1"]
        assert alive.read([COHORTS]) == []
        assert alive.claim_idle([COHORTS], min_idle_ms=60_000) == []
        claimed = alive.claim_idle([COHORTS], min_idle_ms=0)
        assert ids(claimed) == ["id-1"]
        alive.ack(claimed)
        assert dead.pending(COHORTS) == 0

    def test_streams_are_read_together_and_a_missing_one_is_empty(self, open_bus: Open) -> None:
        bus = open_bus("courseinfra", "c1")
        bus.send(COHORTS, fields(1))
        bus.send(ENROLMENTS, fields(2))
        assert sorted(ids(bus.read([COHORTS, ENROLMENTS, "dev-nothing"]))) == ["id-1", "id-2"]
        assert bus.read(["dev-nothing"], block_ms=50) == []


class TestSqliteOpenedxBus(OpenedxBusContract):
    @pytest.fixture
    def open_bus(self, tmp_path: Path) -> Iterator[Open]:
        opened: list[OpenedxBus] = []

        def open_bus(group: str, consumer: str) -> OpenedxBus:
            opened.append(SqliteOpenedxBus(tmp_path / "bus.sqlite3", group, consumer))
            return opened[-1]

        yield open_bus
        for bus in opened:
            bus.close()


class TestRedisOpenedxBus(OpenedxBusContract):
    @pytest.fixture
    def open_bus(self, redis_client: redis.Redis) -> Iterator[Open]:
        clear_redis(redis_client)
        kwargs = redis_client.connection_pool.connection_kwargs
        url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
        opened: list[OpenedxBus] = []

        def open_bus(group: str, consumer: str) -> OpenedxBus:
            opened.append(RedisOpenedxBus.from_url(url, group, consumer))
            return opened[-1]

        yield open_bus
        for bus in opened:
            bus.close()
        clear_redis(redis_client)

    def test_entries_are_native_redis_stream_entries(self, open_bus: Open, redis_client: redis.Redis) -> None:
        open_bus("courseinfra", "c1").send(COHORTS, {"id": "id-7", "event_data": b"avro"})
        assert redis_client.type(COHORTS) == "stream"
        [(_, stored)] = redis_client.xrange(COHORTS)
        assert stored["id"] == "id-7"


def test_a_redis_bus_that_cannot_be_reached_says_so(tmp_path: Path) -> None:
    """Nothing listens on port 1: every call is BusUnavailable, and the command says it in one line."""
    bus = RedisOpenedxBus.from_url("redis://127.0.0.1:1/0", "courseinfra", "c1")
    with pytest.raises(BusUnavailable, match="cannot be reached"):
        bus.read([COHORTS])
    with pytest.raises(BusUnavailable):
        bus.send(COHORTS, fields(1))
    bus.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEINFRA_")}
    env |= {
        "COURSEINFRA_HOME": str(tmp_path),
        "COURSEINFRA_OPENEDX_BUS": "redis",
        "COURSEINFRA_OPENEDX_BUS_URL": "redis://127.0.0.1:1/0",
    }
    done = subprocess.run(
        [*COURSEINFRA, "openedx", "consume", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "courseinfra: the Open edX event bus (Redis) cannot be reached: Error 111 connecting to 127.0.0.1:1. "
        "Connection refused."
    ]
