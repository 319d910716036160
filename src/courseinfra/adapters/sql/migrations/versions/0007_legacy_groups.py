"""Legacy groups kept locally: cohorts, teamsets and teams with their members, the modes courses offer.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legacy_cohorts",
        sa.Column("cohort_id", sa.String(64), nullable=False),
        sa.Column("course_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("assignment_type", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("cohort_id", name="pk_legacy_cohorts"),
        sa.UniqueConstraint("course_id", "name", name="uq_legacy_cohorts_course_name"),
    )
    op.create_table(
        "legacy_cohort_members",
        sa.Column("course_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("cohort_id", sa.String(64), nullable=False),
        # One cohort per user in a course: the key itself.
        sa.PrimaryKeyConstraint("course_id", "user_id", name="pk_legacy_cohort_members"),
    )
    op.create_index("ix_legacy_cohort_members_cohort", "legacy_cohort_members", ["cohort_id", "user_id"])
    op.create_table(
        "legacy_teamsets",
        sa.Column("course_id", sa.String(255), nullable=False),
        sa.Column("teamset_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("max_team_size", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("course_id", "teamset_id", name="pk_legacy_teamsets"),
    )
    op.create_table(
        "legacy_teams",
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("course_id", sa.String(255), nullable=False),
        sa.Column("teamset_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("team_id", name="pk_legacy_teams"),
    )
    op.create_index("ix_legacy_teams_teamset", "legacy_teams", ["course_id", "teamset_id"])
    op.create_table(
        "legacy_team_members",
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("course_id", sa.String(255), nullable=False),
        sa.Column("teamset_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "user_id", name="pk_legacy_team_members"),
        # One team per user in a teamset.
        sa.UniqueConstraint("course_id", "teamset_id", "user_id", name="uq_legacy_team_members_teamset_user"),
    )
    op.create_table(
        "legacy_course_modes",
        sa.Column("course_id", sa.String(255), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("course_id", "mode", name="pk_legacy_course_modes"),
    )


def downgrade() -> None:
    op.drop_table("legacy_course_modes")
    op.drop_table("legacy_team_members")
    op.drop_table("legacy_teams")
    op.drop_table("legacy_teamsets")
    op.drop_table("legacy_cohort_members")
    op.drop_table("legacy_cohorts")
