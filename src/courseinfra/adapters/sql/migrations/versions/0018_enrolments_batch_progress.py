"""A covering index of a batch's progress: the console's batch page counts 100,000 enrolments by status,
progress and completion day from the index alone (issue 17). On SQLite only: on PostgreSQL an index
holding the progress columns makes every progress write a non-HOT update (the aggregator measured 17%
slower), and the page needs none there (ADR 0027).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-12
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index(
        "ix_user_enrolments_batch_progress",
        "user_enrolments",
        ["batchid", "active", "status", "completionpercentage", "completedon"],
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_user_enrolments_batch_progress", table_name="user_enrolments")
