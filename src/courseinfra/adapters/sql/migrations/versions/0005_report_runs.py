"""Report runs: one row per generation of course progress reports.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "report_runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("requested_batches", sa.JSON, nullable=False),
        sa.Column("batches_total", sa.Integer, nullable=False),
        sa.Column("batches_done", sa.Integer, nullable=False),
        sa.Column("rows_written", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("outcome", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_report_runs"),
    )
    op.create_index("ix_report_runs_started", "report_runs", ["started_at"])


def downgrade() -> None:
    op.drop_table("report_runs")
