"""The batch progress index on SQLite only: drop it from a PostgreSQL database that an earlier 0018 gave
it to (there it made every progress write a non-HOT update, the aggregator 17% slower; ADR 0027).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_user_enrolments_batch_progress")


def downgrade() -> None:
    """Nothing: 0018 as it now stands builds the index on SQLite only."""
