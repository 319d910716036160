"""One open entry per bad event: failed events get the digest of their payload, and a partial unique
index on (job, payload_digest) among the unresolved ones.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26

Upgrading an installation that kept the same event several times (an input ingested twice): the open
copies of one event are collapsed into the oldest one, which keeps its id and ``created_at``, sums the
attempts and takes the outcome, code, reason, source and ``last_attempt_at`` of the latest attempt.
Resolved entries are left as they are. A downgrade drops the index and the column; collapsed copies
stay collapsed.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
PAGE = 1000
OPEN = sa.text("resolved_at IS NULL")

# The table as this revision knows it (a frozen copy: a migration does not import tables.py).
failed_events = sa.table(
    "failed_events",
    sa.column("id", Id),
    sa.column("job", sa.String(64)),
    sa.column("outcome", sa.String(16)),
    sa.column("code", sa.String(64)),
    sa.column("reason", sa.Text),
    sa.column("payload", sa.Text),
    sa.column("payload_digest", sa.String(64)),
    sa.column("source", sa.Text),
    sa.column("attempts", sa.Integer),
    sa.column("last_attempt_at", Timestamp),
    sa.column("resolved_at", Timestamp),
)


def payload_digest(payload: str) -> str:
    """The hex SHA-256 of the payload's UTF-8 text (the store's ``payload_digest``, frozen here)."""
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("failed_events") as table:
        table.add_column(sa.Column("payload_digest", sa.String(64), nullable=True))
    _fill_digests(bind)
    _collapse_open_duplicates(bind)
    # NOT NULL first: on SQLite it rebuilds the table, which would have to carry the partial index over.
    with op.batch_alter_table("failed_events") as table:
        table.alter_column("payload_digest", existing_type=sa.String(64), nullable=False)
    op.create_index(
        "ix_failed_events_open_payload",
        "failed_events",
        ["job", "payload_digest"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def _fill_digests(bind: sa.Connection) -> None:
    c = failed_events.c
    fill = (
        failed_events.update()
        .where(c.id == sa.bindparam("row_id"))
        .values(payload_digest=sa.bindparam("digest"))
    )
    after = 0
    while rows := bind.execute(
        sa.select(c.id, c.payload).where(c.id > after).order_by(c.id).limit(PAGE)
    ).all():
        bind.execute(fill, [{"row_id": row.id, "digest": payload_digest(row.payload)} for row in rows])
        after = rows[-1].id


def _collapse_open_duplicates(bind: sa.Connection) -> None:
    c = failed_events.c
    groups = bind.execute(
        sa.select(c.job, c.payload_digest)
        .where(c.resolved_at.is_(None))
        .group_by(c.job, c.payload_digest)
        .having(sa.func.count() > 1)
    ).all()
    for job, digest in groups:
        same = (c.job == job, c.payload_digest == digest, c.resolved_at.is_(None))
        copies = bind.execute(
            sa.select(c.id, c.outcome, c.code, c.reason, c.source, c.attempts, c.last_attempt_at)
            .where(*same)
            .order_by(c.id)
        ).all()
        oldest = copies[0]
        latest = max(copies, key=lambda row: (row.last_attempt_at, row.id))
        bind.execute(
            failed_events.update()
            .where(c.id == oldest.id)
            .values(
                attempts=sum(row.attempts for row in copies),
                outcome=latest.outcome,
                code=latest.code,
                reason=latest.reason,
                source=latest.source,
                last_attempt_at=latest.last_attempt_at,
            )
        )
        bind.execute(failed_events.delete().where(*same, c.id != oldest.id))


def downgrade() -> None:
    op.drop_index("ix_failed_events_open_payload", table_name="failed_events")
    with op.batch_alter_table("failed_events") as table:
        table.drop_column("payload_digest")
