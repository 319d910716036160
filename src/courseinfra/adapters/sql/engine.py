"""Engines for the embedded default (SQLite in WAL mode) and PostgreSQL, and the schema migrations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: How long a SQLite writer waits for the write lock before its unit of work fails as contention.
SQLITE_BUSY_TIMEOUT_S = 30


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class SqliteTuning:
    """How a SQLite connection is set up (each a ``COURSEINFRA_SQLITE_*`` setting): the page cache and the
    memory map per connection, how many WAL pages accumulate before a checkpoint, and how often the
    file is synced (NORMAL in WAL mode loses no committed transaction on a process crash, only on a
    power loss)."""

    busy_timeout: float = SQLITE_BUSY_TIMEOUT_S
    cache_mb: int = 256
    mmap_mb: int = 1024
    wal_autocheckpoint: int = 10_000
    synchronous: Literal["OFF", "NORMAL", "FULL"] = "NORMAL"


def create_engine(url: str, *, sqlite: SqliteTuning | None = None) -> sa.Engine:
    """An engine for ``url``.

    On SQLite (the file's folder is created) a unit of work is one real transaction: pysqlite's own
    transaction handling is turned off, because it starts a transaction only at the first write, so
    reads before it ran outside any transaction and two processes could both read a row, then each
    write it, one update lost. Every transaction starts with ``BEGIN IMMEDIATE``: it takes the
    database's write lock at once, so writers take turns and a waiting writer queues up to the busy
    timeout; a connection given the execution option ``sqlite_begin="DEFERRED"`` begins a read-only
    transaction (a consistent snapshot that never waits for the writer, in WAL mode), one with
    ``isolation_level="AUTOCOMMIT"`` none (for a checkpoint or VACUUM).
    """
    parsed = sa.make_url(url)
    tuning = sqlite or SqliteTuning()
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"timeout": tuning.busy_timeout},
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # BEGIN is ours (see _begin)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={tuning.synchronous}")
            cursor.execute(f"PRAGMA cache_size=-{tuning.cache_mb * 1024}")
            cursor.execute(f"PRAGMA mmap_size={tuning.mmap_mb * 1024 * 1024}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={tuning.wal_autocheckpoint}")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            options = connection.get_execution_options()
            if options.get("isolation_level") == "AUTOCOMMIT":
                return  # statements outside any transaction (a checkpoint, VACUUM)
            mode = options.get("sqlite_begin", "IMMEDIATE")
            connection.exec_driver_sql("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(
        parsed, json_serializer=_json_dumps, json_deserializer=orjson.loads, pool_pre_ping=True
    )


def alembic_config(engine: sa.Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def shipped_head() -> str:
    """The latest revision this package ships: the highest numbered migration file (the revisions are
    one line, ``0001`` to ``00NN``, each file named after its revision)."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def migrate(engine: sa.Engine) -> bool:
    """Bring the schema to the latest revision; return whether anything was applied. A schema already
    at the latest revision is recognised with one query, without loading Alembic (every command starts
    here; Alembic costs about a third of a second to import)."""
    if schema_revision(engine) == shipped_head():
        return False
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config(engine)
    head = ScriptDirectory.from_config(config).get_current_head()
    if schema_revision(engine) == head:
        return False
    command.upgrade(config, "head")
    return True


def schema_revision(engine: sa.Engine) -> str | None:
    """The schema's revision as Alembic records it (None: no schema yet)."""
    # A deferred transaction on SQLite: reading the revision takes no write lock.
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
