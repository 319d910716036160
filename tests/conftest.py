"""Backends for the suite: every test that takes ``app`` (or ``settings``) runs once on the embedded
default (SQLite files, the SQLite cache) and once on PostgreSQL + Redis.

``COURSEINFRA_TEST_BACKENDS`` narrows the list (``embedded`` for a machine without servers). A listed
backend whose server does not answer fails the run: it is never skipped.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from courseinfra.adapters.sql.engine import create_engine, migrate
from courseinfra.bootstrap import App, bootstrap
from courseinfra.settings import Settings, load_settings

pytest.register_assert_rewrite("tests.support")

from tests.support.servers import (  # noqa: E402 - after the assert rewrite is registered
    BACKENDS,
    CONFORMANCE,
    PG_URL,
    REDIS_OWNER_KEY,
    REDIS_URL,
    WORKER,
    clear_redis,
    recreate_database,
    truncate_all,
)

#: The fake Open edX server's fixtures, the linked-group world (``world``) and the console's browser
#: (``browser``, ``console_server``), for every test module.
pytest_plugins = ["tests.support.openedx", "tests.support.legacy_world", "tests.support.console"]


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[sa.Engine]:
    """A fresh test database, migrated once per session."""
    recreate_database(PG_URL)
    engine = create_engine(PG_URL)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {error}; run scripts/ensure-services.sh")
    if client.dbsize() and client.get(REDIS_OWNER_KEY) is None:
        pytest.fail(
            f"Redis database {REDIS_URL} holds keys this suite did not write: set COURSEINFRA_TEST_REDIS_URL "
            "to an empty database (the suite empties the one it uses)"
        )
    clear_redis(client)
    yield client
    client.flushdb()  # its own: marked at the start
    client.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    if backend == "embedded":
        yield load_settings(home=tmp_path)
        return
    if backend != "postgres":
        pytest.fail(f"unknown backend {backend!r} in COURSEINFRA_TEST_BACKENDS")
    engine: sa.Engine = request.getfixturevalue("postgres_engine")
    client: redis.Redis = request.getfixturevalue("redis_client")
    truncate_all(engine)
    clear_redis(client)
    yield load_settings(home=tmp_path, database_url=PG_URL, redis_url=REDIS_URL)
    truncate_all(engine)
    clear_redis(client)


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    application = bootstrap(settings)
    yield application
    application.close()


SERVER_FIXTURES = {"postgres_engine", "redis_client"}
#: One run at a time on a database: each worker of a parallel run locks its own.
SERVER_LOCK = Path(tempfile.gettempdir()) / f"courseinfra-test-servers{'-' + WORKER if WORKER else ''}.lock"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Two runs on one machine share the test database and Redis database: the second waits for the
    first instead of truncating its tables under it."""
    if "postgres" not in BACKENDS:
        return
    lock = SERVER_LOCK.open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"\nanother test run holds {SERVER_LOCK}; waiting for it to finish")
        fcntl.flock(lock, fcntl.LOCK_EX)
    session.config.stash[_lock_key] = lock


_lock_key = pytest.StashKey[object]()


def needs_conformance_data(item: pytest.Item) -> bool:
    return item.get_closest_marker("conformance_data") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the postgres backend, deselect (visibly) the tests that need a server; without the peer
    systems' conformance data, those that read it, saying so in one line. CI never narrows."""
    if os.environ.get("CI") and "postgres" not in BACKENDS:
        raise pytest.UsageError("CI runs every backend: COURSEINFRA_TEST_BACKENDS must include postgres")
    if not CONFORMANCE.is_dir():
        missing = f"no conformance data at {CONFORMANCE} (the peer systems' test data, beside the repository)"
        if os.environ.get("CI"):
            raise pytest.UsageError(f"{missing}: CI runs the conformance tests")
        drop = [item for item in items if needs_conformance_data(item)]
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if not needs_conformance_data(item)]
        print(f"\n{missing}: {len(drop)} tests that read it are deselected")
    if "postgres" in BACKENDS:
        return
    keep, drop = [], []
    for item in items:
        (drop if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
