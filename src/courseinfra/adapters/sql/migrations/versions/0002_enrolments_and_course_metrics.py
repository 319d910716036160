"""Course batches, user enrolments, activity aggregates and the AUDIT ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JsonDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("content_hierarchy") as table:
        table.add_column(sa.Column("channel", sa.String(255), nullable=True))
        table.add_column(sa.Column("framework", sa.String(255), nullable=True))
    op.create_table(
        "course_batch",
        sa.Column("batchid", sa.String(255), nullable=False),
        sa.Column("courseid", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("startdate", sa.Date, nullable=True),
        sa.Column("enddate", sa.Date, nullable=True),
        sa.Column("enrollmentenddate", sa.Date, nullable=True),
        sa.Column("enrollmenttype", sa.String(32), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("createdfor", sa.JSON, nullable=False),
        sa.Column("mentors", sa.JSON, nullable=False),
        sa.Column("createdby", sa.String(255), nullable=True),
        sa.Column("createddate", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("batchid", name="pk_course_batch"),
    )
    op.create_index("ix_course_batch_course", "course_batch", ["courseid", "batchid"])
    op.create_table(
        "user_enrolments",
        sa.Column("userid", sa.String(255), nullable=False),
        sa.Column("courseid", sa.String(255), nullable=False),
        sa.Column("batchid", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("addedby", sa.String(255), nullable=True),
        sa.Column("enrolleddate", Timestamp, nullable=False),
        sa.Column("datetime", Timestamp, nullable=False),
        sa.Column("contentstatus", JsonDocument, nullable=False),
        sa.Column("lastreadcontentid", sa.String(255), nullable=True),
        sa.Column("lastreadcontentstatus", sa.Integer, nullable=True),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("completionpercentage", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("completedon", Timestamp, nullable=True),
        sa.Column("certificates", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("userid", "courseid", "batchid", name="pk_user_enrolments"),
    )
    op.create_index("ix_user_enrolments_batch", "user_enrolments", ["batchid", "userid"])
    op.create_table(
        "user_activity_agg",
        sa.Column("activity_type", sa.String(32), nullable=False),
        sa.Column("activity_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("context_id", sa.String(255), nullable=False),
        sa.Column("agg", sa.JSON, nullable=False),
        sa.Column("agg_last_updated", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint(
            "activity_type", "activity_id", "user_id", "context_id", name="pk_user_activity_agg"
        ),
    )
    op.create_index("ix_user_activity_agg_user", "user_activity_agg", ["user_id", "context_id"])
    op.create_table(
        "audit_ledger",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("userid", sa.String(255), nullable=False),
        sa.Column("courseid", sa.String(255), nullable=False),
        sa.Column("batchid", sa.String(255), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("event", JsonDocument, nullable=False),
        sa.Column("emitted_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_ledger"),
        sa.UniqueConstraint(
            "userid", "courseid", "batchid", "object_type", "object_id", "action", name="uq_audit_ledger_key"
        ),
    )
    op.create_index("ix_audit_ledger_course", "audit_ledger", ["courseid", "id"])


def downgrade() -> None:
    op.drop_table("audit_ledger")
    op.drop_table("user_activity_agg")
    op.drop_table("user_enrolments")
    op.drop_table("course_batch")
    with op.batch_alter_table("content_hierarchy") as table:
        table.drop_column("framework")
        table.drop_column("channel")
