"""The AUDIT ledger becomes the AUDIT events' outbox: rows keep the channel instead of the telemetry
document (rebuilt on read), and a relay cursor replaces the per-event outbox rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Upgrading an installation that already emitted AUDIT events: their outbox rows stay and are relayed as
before, and the ledger's cursor starts after the last existing entry, so none is delivered twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("audit_ledger") as table:
        table.add_column(sa.Column("channel", sa.String(255), nullable=True))
    if bind.dialect.name == "postgresql":
        op.execute("UPDATE audit_ledger SET channel = NULLIF(event -> 'context' ->> 'channel', '')")
    else:
        op.execute("UPDATE audit_ledger SET channel = NULLIF(json_extract(event, '$.context.channel'), '')")
    # SQLite rebuilds the table here: it also gets AUTOINCREMENT, so that an id is never reused.
    with op.batch_alter_table("audit_ledger", table_kwargs={"sqlite_autoincrement": True}) as table:
        table.drop_column("event")
    cursors = op.create_table(
        "relay_cursors",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_relay_cursors"),
    )
    last = bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM audit_ledger")).scalar_one()
    op.bulk_insert(cursors, [{"name": "audit", "position": int(last), "attempts": 0}])


def downgrade() -> None:
    # The restored event column is left empty ({}): earlier code read the telemetry from it, and
    # rebuilding it needs the domain's rules, which a migration must not import.
    op.drop_table("relay_cursors")
    with op.batch_alter_table("audit_ledger") as table:
        table.add_column(sa.Column("event", sa.JSON, nullable=False, server_default="{}"))
        table.drop_column("channel")
