"""User groups (definitions, overrides, members, history) and the enrolment mode.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("user_enrolments") as table:
        table.add_column(sa.Column("mode", sa.String(32), nullable=False, server_default="audit"))
    op.create_table(
        "user_groups",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("frozen", sa.Boolean, nullable=False),
        sa.Column("criteria", sa.JSON, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("member_count", sa.Integer, nullable=False),
        sa.Column("last_refreshed_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("group_id", name="pk_user_groups"),
        sa.UniqueConstraint("scope", "name", name="uq_user_groups_scope_name"),
    )
    op.create_table(
        "user_group_overrides",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_user_group_overrides"),
    )
    op.create_table(
        "user_group_members",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("joined_at", Timestamp, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_user_group_members"),
    )
    op.create_index("ix_user_group_members_user", "user_group_members", ["user_id"])
    op.create_table(
        "user_group_history",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("change", sa.String(8), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_user_group_history"),
    )
    op.create_index("ix_user_group_history_group", "user_group_history", ["group_id", "id"])
    op.create_index("ix_user_group_history_user", "user_group_history", ["group_id", "user_id", "id"])


def downgrade() -> None:
    op.drop_table("user_group_history")
    op.drop_table("user_group_members")
    op.drop_table("user_group_overrides")
    op.drop_table("user_groups")
    with op.batch_alter_table("user_enrolments") as table:
        table.drop_column("mode")
