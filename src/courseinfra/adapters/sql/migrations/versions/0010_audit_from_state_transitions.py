"""AUDIT events from state transitions: the AUDIT ledger (a row per event under a six-column unique key)
becomes a log of pages (a row per transaction and course), and each enrolment keeps the units whose
AUDIT events were emitted (``auditmarks``). ``user_activity_agg`` is clustered on its key on SQLite.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Upgrading an installation that already emitted AUDIT events: every ledger row becomes an entry of a
page, in ledger order (rows of one course and one commit time share a page); the relay's cursor moves to
the entry of the last row it had delivered, so nothing is delivered twice or skipped; each enrolment's
marks are its ledger's ``CourseUnit`` rows. A downgrade rebuilds the ledger from the pages that are
left (pruned pages are gone; the ledger's unique key then no longer knows them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
ENTRY_BITS = 20
PAGE_ENTRIES = 1 << ENTRY_BITS
PAGE = 10_000
AUDIT_RELAY = "audit"

# The tables as this revision knows them (frozen copies: a migration does not import tables.py).
audit_ledger = sa.table(
    "audit_ledger",
    sa.column("id", Id),
    sa.column("userid", sa.String),
    sa.column("courseid", sa.String),
    sa.column("batchid", sa.String),
    sa.column("object_type", sa.String),
    sa.column("object_id", sa.String),
    sa.column("action", sa.String),
    sa.column("channel", sa.String),
    sa.column("emitted_at", Timestamp),
)
audit_pages = sa.table(
    "audit_pages",
    sa.column("id", Id),
    sa.column("courseid", sa.String),
    sa.column("channel", sa.String),
    sa.column("emitted_at", Timestamp),
    sa.column("size", sa.Integer),
    sa.column("entries", sa.LargeBinary),
)
relay_cursors = sa.table("relay_cursors", sa.column("name", sa.String), sa.column("position", sa.BigInteger))
user_enrolments = sa.table(
    "user_enrolments",
    sa.column("userid", sa.String),
    sa.column("courseid", sa.String),
    sa.column("batchid", sa.String),
    sa.column("auditmarks", sa.JSON),
)


def _ledger_rows(bind: sa.Connection) -> Iterator[list[sa.Row[Any]]]:
    after = 0
    while True:
        rows = bind.execute(
            sa.select(audit_ledger).where(audit_ledger.c.id > after).order_by(audit_ledger.c.id).limit(PAGE)
        ).all()
        if not rows:
            return
        yield list(rows)
        after = rows[-1].id


def _cursor(bind: sa.Connection) -> int:
    position = bind.execute(
        sa.select(relay_cursors.c.position).where(relay_cursors.c.name == AUDIT_RELAY)
    ).scalar_one_or_none()
    return int(position or 0)


def _set_cursor(bind: sa.Connection, position: int) -> None:
    bind.execute(relay_cursors.update().where(relay_cursors.c.name == AUDIT_RELAY).values(position=position))


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "audit_pages",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("courseid", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(255), nullable=True),
        sa.Column("emitted_at", Timestamp, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("entries", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_pages"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_pages_course", "audit_pages", ["courseid", "id"])
    with op.batch_alter_table("user_enrolments") as table:
        table.add_column(sa.Column("auditmarks", sa.JSON, nullable=False, server_default="{}"))

    delivered = _cursor(bind)
    cursor = 0
    marks: dict[tuple[str, str, str], dict[str, set[str]]] = {}
    for rows in _ledger_rows(bind):
        # Consecutive rows of one course, channel and commit time make a page, as the log writes them.
        start = 0
        while start < len(rows):
            head = rows[start]
            end = start + 1
            while (
                end < len(rows)
                and end - start < PAGE_ENTRIES
                and (rows[end].courseid, rows[end].channel, rows[end].emitted_at)
                == (head.courseid, head.channel, head.emitted_at)
            ):
                end += 1
            page = rows[start:end]
            page_id = bind.execute(
                audit_pages.insert()
                .values(
                    courseid=head.courseid,
                    channel=head.channel,
                    emitted_at=head.emitted_at,
                    size=len(page),
                    entries=json.dumps(
                        [[r.userid, r.batchid, r.object_type, r.object_id, r.action] for r in page],
                        separators=(",", ":"),
                    ).encode(),
                )
                .returning(audit_pages.c.id)
            ).scalar_one()
            for index, row in enumerate(page):
                if row.id <= delivered:
                    cursor = (int(page_id) << ENTRY_BITS) + index
                if row.object_type == "CourseUnit":
                    unit_marks = marks.setdefault((row.userid, row.courseid, row.batchid), {})
                    name = "completed" if row.action == "complete" else "started"
                    unit_marks.setdefault(name, set()).add(row.object_id)
            start = end
    _set_cursor(bind, cursor)
    update = (
        user_enrolments.update()
        .where(
            user_enrolments.c.userid == sa.bindparam("k_user"),
            user_enrolments.c.courseid == sa.bindparam("k_course"),
            user_enrolments.c.batchid == sa.bindparam("k_batch"),
        )
        .values(auditmarks=sa.bindparam("marks", type_=sa.JSON))
    )
    items = list(marks.items())
    for start in range(0, len(items), PAGE):
        bind.execute(
            update,
            [
                {
                    "k_user": user,
                    "k_course": course,
                    "k_batch": batch,
                    "marks": {name: sorted(units) for name, units in sorted(unit_marks.items())},
                }
                for (user, course, batch), unit_marks in items[start : start + PAGE]
            ],
        )
    op.drop_index("ix_audit_ledger_course", table_name="audit_ledger")
    op.drop_table("audit_ledger")
    if bind.dialect.name == "sqlite":
        # Rebuilt as a WITHOUT ROWID table: a metric is found and rewritten in one B-tree.
        with op.batch_alter_table(
            "user_activity_agg", recreate="always", table_kwargs={"sqlite_with_rowid": False}
        ):
            pass


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("user_activity_agg", recreate="always"):
            pass
    op.create_table(
        "audit_ledger",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("userid", sa.String(255), nullable=False),
        sa.Column("courseid", sa.String(255), nullable=False),
        sa.Column("batchid", sa.String(255), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(255), nullable=True),
        sa.Column("emitted_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_ledger"),
        sa.UniqueConstraint(
            "userid", "courseid", "batchid", "object_type", "object_id", "action", name="uq_audit_ledger_key"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_ledger_course", "audit_ledger", ["courseid", "id"])
    delivered = _cursor(bind)
    cursor = 0
    after = 0
    while True:
        pages = bind.execute(
            sa.select(audit_pages).where(audit_pages.c.id > after).order_by(audit_pages.c.id).limit(100)
        ).all()
        if not pages:
            break
        for page in pages:
            for index, (user, batch, object_type, object_id, action) in enumerate(json.loads(page.entries)):
                row_id = bind.execute(
                    audit_ledger.insert()
                    .values(
                        userid=user,
                        courseid=page.courseid,
                        batchid=batch,
                        object_type=object_type,
                        object_id=object_id,
                        action=action,
                        channel=page.channel,
                        emitted_at=page.emitted_at,
                    )
                    .returning(audit_ledger.c.id)
                ).scalar_one()
                if (int(page.id) << ENTRY_BITS) + index <= delivered:
                    cursor = int(row_id)
        after = pages[-1].id
    _set_cursor(bind, cursor)
    with op.batch_alter_table("user_enrolments") as table:
        table.drop_column("auditmarks")
    op.drop_index("ix_audit_pages_course", table_name="audit_pages")
    op.drop_table("audit_pages")
