"""The ``db`` commands: upgrade the database schema."""

from __future__ import annotations

import typer

from courseinfra.entrypoints.cli.common import err
from courseinfra.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="The database schema.")


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (done at start too, unless COURSEINFRA_AUTO_MIGRATE=false)."""
    from courseinfra.adapters.sql.engine import create_engine, migrate, schema_revision

    engine = create_engine(load_settings().sql_url)
    applied = migrate(engine)
    err.print(
        f"schema at revision {schema_revision(engine)}" + (" (upgraded)" if applied else " (already current)")
    )
    engine.dispose()
