"""Snapshots of the job counters, for events per second over time (ADR 0025).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_counter_samples",
        sa.Column("bucket", Timestamp, nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("counter", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("taken_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("bucket", "job", "counter", name="pk_job_counter_samples"),
    )


def downgrade() -> None:
    op.drop_table("job_counter_samples")
