"""Helpers the benchmarks share: the scratch PostgreSQL database they drop and create, and the revision
they measured. Imported by the scripts of this folder (run as ``python bench/<name>.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import sqlalchemy as sa

#: Databases a benchmark must never drop, whatever ``--database-url`` says.
FORBIDDEN_DATABASES = frozenset({"courseinfra_test", "postgres", "template0", "template1"})


def _admin_engine(url: str) -> sa.Engine:
    """An AUTOCOMMIT engine on the server's ``postgres`` database (to drop and create databases)."""
    return sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def check_scratch_database(url: str) -> str:
    """The database name of ``url``; exits if it is one a benchmark must never drop."""
    name = sa.make_url(url).database or ""
    if name in FORBIDDEN_DATABASES or name.startswith("courseinfra_test"):  # the suite's, gwN included
        raise SystemExit(f"error: refusing to drop database {name!r}; give a scratch database")
    return name


def recreate_database(url: str) -> None:
    """DROP (WITH FORCE) and CREATE the database of ``url``, connected to ``postgres``."""
    name = check_scratch_database(url)
    admin = _admin_engine(url)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()


def drop_database(url: str) -> None:
    """DROP the database of ``url`` (WITH FORCE)."""
    name = check_scratch_database(url)
    admin = _admin_engine(url)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def source_revision() -> str:
    """The repository's commit and whether ``src/`` has uncommitted changes (others edit it meanwhile)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git unavailable)"
    return f"{commit}{' + uncommitted changes in src/' if dirty else ''}"
