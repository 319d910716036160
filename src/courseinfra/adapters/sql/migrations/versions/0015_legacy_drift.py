"""The open drift of links whose user group is the authority (ADR 0022).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "legacy_drift",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("side", sa.String(32), nullable=False),
        sa.Column("detected_at", Timestamp, nullable=False),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_legacy_drift"),
    )


def downgrade() -> None:
    op.drop_table("legacy_drift")
