"""The Open edX events applied, by their envelope id (ADR 0022).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "openedx_events_applied",
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("applied_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_openedx_events_applied"),
    )
    op.create_index("ix_openedx_events_applied_at", "openedx_events_applied", ["applied_at"])


def downgrade() -> None:
    op.drop_index("ix_openedx_events_applied_at", table_name="openedx_events_applied")
    op.drop_table("openedx_events_applied")
