"""The servers and folders the suite uses: the test database and Redis database (its own, named here),
the example and conformance files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from courseinfra.adapters.sql.tables import metadata

REPO = Path(__file__).resolve().parents[2]
#: Sunbird's test hierarchies (``COURSEINFRA_TEST_CONFORMANCE`` names another folder).
CONFORMANCE = Path(
    os.environ.get(
        "COURSEINFRA_TEST_CONFORMANCE", str(REPO.parent / "shared" / "conformance" / "sunbird-relation-cache")
    )
)
EXAMPLES = REPO / "examples"

#: A worker of a parallel run (pytest-xdist names them gw0, gw1, ...) has a database and a Redis
#: database of its own: worker N uses the database's name followed by ``_gwN``, and the Redis database
#: N below the one named (15, 14, ...).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_INDEX = int(WORKER.removeprefix("gw")) if WORKER.startswith("gw") else 0


def worker_database_url(url: str) -> str:
    if not WORKER:
        return url
    parsed = sa.make_url(url)
    return parsed.set(database=f"{parsed.database}_{WORKER}").render_as_string(hide_password=False)


def worker_redis_url(url: str) -> str:
    base, _, database = url.rpartition("/")
    if not WORKER or not database.isdigit():
        return url
    if int(database) < WORKER_INDEX:
        pytest.exit(
            f"COURSEINFRA_TEST_REDIS_URL {url}: worker {WORKER} would need Redis database {int(database) - WORKER_INDEX}"
        )
    return f"{base}/{int(database) - WORKER_INDEX}"


PG_URL = worker_database_url(
    os.environ.get(
        "COURSEINFRA_TEST_DATABASE_URL",
        "postgresql+psycopg://courseinfra:courseinfra@127.0.0.1:5432/courseinfra_test",
    )
)
REDIS_URL = worker_redis_url(os.environ.get("COURSEINFRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
BACKENDS = [
    b.strip() for b in os.environ.get("COURSEINFRA_TEST_BACKENDS", "embedded,postgres").split(",") if b
]


#: The comment by which the suite knows a PostgreSQL database as its own: it drops no other.
DATABASE_OWNER_MARK = "courseinfra test suite"


def recreate_database(url: str) -> None:
    """Drop the suite's database (only if it bears the suite's mark) and create it afresh, marked."""
    target = sa.make_url(url)
    name = target.database
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            existing = connection.execute(
                sa.text(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :name"
                ),
                {"name": name},
            ).first()
            if existing is not None and existing[0] != DATABASE_OWNER_MARK:
                pytest.fail(
                    f"PostgreSQL database {name} exists and is not this suite's (its comment is not "
                    f"{DATABASE_OWNER_MARK!r}): the suite drops only a database it created; set "
                    "COURSEINFRA_TEST_DATABASE_URL to a database name that is free"
                )
            if existing is not None:
                connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            connection.execute(sa.text(f"COMMENT ON DATABASE \"{name}\" IS '{DATABASE_OWNER_MARK}'"))
    except sa.exc.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable at {target.render_as_string()}: {error.orig}; run scripts/ensure-services.sh"
        )
    finally:
        admin.dispose()


#: The key by which the suite knows a Redis database as its own: it flushes no other.
REDIS_OWNER_KEY = "courseinfra-test:owner"


def clear_redis(client: redis.Redis) -> None:
    """Empty the suite's Redis database, keeping the mark that it is the suite's."""
    client.flushdb()
    client.set(REDIS_OWNER_KEY, "courseinfra test suite")


def truncate_all(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
