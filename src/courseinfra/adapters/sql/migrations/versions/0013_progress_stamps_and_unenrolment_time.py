"""When each content was first started and completed, and when a learner left a batch: what a report of
a past date needs (ADR 0010).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
JsonDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("user_enrolments") as table:
        table.add_column(sa.Column("statustimes", JsonDocument, nullable=False, server_default="{}"))
        table.add_column(sa.Column("unenrolledon", Timestamp, nullable=True))
    # An enrolment left before this revision was last changed when it was left, at the latest.
    op.execute("UPDATE user_enrolments SET unenrolledon = datetime WHERE active = false")


def downgrade() -> None:
    with op.batch_alter_table("user_enrolments") as table:
        table.drop_column("unenrolledon")
        table.drop_column("statustimes")
