"""A scope on API tokens (course_staff: a course or an organisation), and the trail of who changed what.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as table:
        table.add_column(sa.Column("scope", sa.String(300), nullable=True))
    op.create_table(
        "change_trail",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(255), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_change_trail"),
    )
    op.create_index("ix_change_trail_target", "change_trail", ["target"])


def downgrade() -> None:
    op.drop_index("ix_change_trail_target", "change_trail")
    op.drop_table("change_trail")
    with op.batch_alter_table("api_tokens") as table:
        table.drop_column("scope")
