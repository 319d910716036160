"""The suite is a guest on a shared machine: it drops only a PostgreSQL database it created (marked by
its comment), as it flushes only a Redis database it marked."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from tests.support.servers import BACKENDS, DATABASE_OWNER_MARK, PG_URL, recreate_database

pytestmark = pytest.mark.skipif(
    "postgres" not in BACKENDS, reason="COURSEINFRA_TEST_BACKENDS leaves PostgreSQL out"
)


def admin() -> sa.Engine:
    return sa.create_engine(sa.make_url(PG_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")


def test_a_database_the_suite_did_not_create_is_never_dropped() -> None:
    name = f"courseinfra_test_foreign_{os.getpid()}"
    engine = admin()
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        with pytest.raises(pytest.fail.Exception, match="is not this suite's"):
            recreate_database(str(sa.make_url(PG_URL).set(database=name)))
        with engine.connect() as connection:
            still = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
        assert still is not None, "the foreign database is still there"
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))  # this test's own
        engine.dispose()


def test_the_suite_marks_the_database_it_creates(postgres_engine: sa.Engine) -> None:
    name = postgres_engine.url.database
    engine = admin()
    try:
        with engine.connect() as connection:
            mark = connection.execute(
                sa.text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"),
                {"n": name},
            ).scalar_one()
    finally:
        engine.dispose()
    assert mark == DATABASE_OWNER_MARK
