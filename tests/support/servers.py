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
CONFORMANCE = REPO.parent / "shared" / "conformance" / "sunbird-relation-cache"
EXAMPLES = REPO / "examples"

PG_URL = os.environ.get(
    "COURSEINFRA_TEST_DATABASE_URL",
    "postgresql+psycopg://courseinfra:courseinfra@127.0.0.1:5432/courseinfra_test",
)
REDIS_URL = os.environ.get("COURSEINFRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BACKENDS = [
    b.strip() for b in os.environ.get("COURSEINFRA_TEST_BACKENDS", "embedded,postgres").split(",") if b
]


def recreate_database(url: str) -> None:
    target = sa.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
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
