"""The schema. Alembic migrations in ``migrations/`` create it; this module is their reference."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JsonDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

content_hierarchy = sa.Table(
    "content_hierarchy",
    metadata,
    sa.Column("identifier", sa.String(255), primary_key=True),
    sa.Column("mime_type", sa.String(255), nullable=False),
    sa.Column("hierarchy", JsonDocument, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("published_at", Timestamp, nullable=True),
)

failed_events = sa.Table(
    "failed_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_attempt_at", Timestamp, nullable=False),
    sa.Column("resolved_at", Timestamp, nullable=True),
    sa.Index("ix_failed_events_open", "outcome", "resolved_at", "id"),
    sa.Index("ix_failed_events_job", "job", "id"),
)

job_counters = sa.Table(
    "job_counters",
    metadata,
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("counter", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("event_type", sa.String(255), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("payload", JsonDocument, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("relayed_at", Timestamp, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index("ix_outbox_pending", "relayed_at", "id"),
)
