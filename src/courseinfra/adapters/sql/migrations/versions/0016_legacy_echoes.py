"""The echoes expected of courseinfra's own legacy writes (ADR 0022).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "legacy_echoes",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("member", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(255), nullable=True),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_legacy_echoes"),
    )
    op.create_index("ix_legacy_echoes_expires_at", "legacy_echoes", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_legacy_echoes_expires_at", table_name="legacy_echoes")
    op.drop_table("legacy_echoes")
