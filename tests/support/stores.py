"""Where a contract suite's ``engine`` comes from: one abstract suite of a store, run once per database
by a class that mixes one of these in (``class TestSqliteX(OnSqlite, XContract): ...``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from courseinfra.adapters.sql.engine import create_engine, migrate
from tests.support.servers import truncate_all


class OnSqlite:
    """The suite on a migrated SQLite file of the test's own."""

    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[sa.Engine]:
        engine = create_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
        migrate(engine)
        yield engine
        engine.dispose()


class OnPostgres:
    """The suite on the test database, emptied before and after each test."""

    @pytest.fixture
    def engine(self, postgres_engine: sa.Engine) -> Iterator[sa.Engine]:
        truncate_all(postgres_engine)
        yield postgres_engine
        truncate_all(postgres_engine)
