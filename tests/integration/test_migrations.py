"""The Alembic migrations on every backend, each on a scratch database of its own: the schema they build
is the one ``tables.py`` describes, and a migration that changes kept data changes it as it says."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from courseinfra.adapters.sql.engine import alembic_config, create_engine, schema_revision
from courseinfra.adapters.sql.tables import metadata, schema_objects_of
from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.job_requests import Outcome
from courseinfra.domain.progress import EnrolmentKey
from courseinfra.services.failed_events.ports import NewFailedEvent
from tests.support.servers import PG_URL, recreate_database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SCRATCH_DATABASE = "courseinfra_test_migrations"


PAYLOAD = '{"eid": "BE_JOB_REQUEST", "edata": {"action": "post-publish-process"}}'


def migration_context(connection: sa.Connection) -> MigrationContext:
    """Alembic's view of ``connection``, leaving out what tables.py declares for other dialects only."""
    return MigrationContext.configure(
        connection, opts={"include_object": schema_objects_of(connection.dialect.name)}
    )


@pytest.fixture
def scratch(backend: str, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty database, not the suite's shared one: these tests move its schema up and down."""
    if backend == "embedded":
        engine = create_engine(f"sqlite:///{tmp_path / 'migrations.sqlite3'}")
        yield engine
        engine.dispose()
        return
    url = sa.make_url(PG_URL).set(database=SCRATCH_DATABASE).render_as_string(hide_password=False)
    recreate_database(url)
    engine = create_engine(url)
    yield engine
    engine.dispose()
    admin = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{SCRATCH_DATABASE}" WITH (FORCE)'))
    admin.dispose()


def test_head_is_the_schema_of_tables_py_and_0009_goes_down_and_up(scratch: sa.Engine) -> None:
    config = alembic_config(scratch)
    command.upgrade(config, "head")
    with scratch.connect() as connection:
        assert compare_metadata(migration_context(connection), metadata) == []
    command.downgrade(config, "0008")
    assert schema_revision(scratch) == "0008"
    columns = {c["name"] for c in sa.inspect(scratch).get_columns("failed_events")}
    assert "payload_digest" not in columns
    command.upgrade(config, "head")
    with scratch.connect() as connection:
        assert compare_metadata(migration_context(connection), metadata) == []


# failed_events as revision 0008 left it.
failed_events_0008 = sa.table(
    "failed_events",
    sa.column("id", sa.Integer),
    sa.column("job", sa.String),
    sa.column("outcome", sa.String),
    sa.column("code", sa.String),
    sa.column("reason", sa.Text),
    sa.column("payload", sa.Text),
    sa.column("source", sa.Text),
    sa.column("attempts", sa.Integer),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.column("resolved_at", sa.DateTime(timezone=True)),
)


def keep_0008(
    connection: sa.Connection,
    job: str,
    code: str,
    source: str,
    attempts: int,
    at: datetime,
    resolved_at: datetime | None = None,
) -> int:
    """Keep PAYLOAD the way revision 0008 did: a new row every time."""
    row = {
        "job": job,
        "outcome": "failed",
        "code": code,
        "reason": f"reason {code}",
        "payload": PAYLOAD,
        "source": source,
        "attempts": attempts,
        "created_at": at,
        "last_attempt_at": at,
        "resolved_at": resolved_at,
    }
    return int(
        connection.execute(
            failed_events_0008.insert().values(row).returning(failed_events_0008.c.id)
        ).scalar_one()
    )


def test_0009_collapses_the_open_copies_of_an_event_and_leaves_resolved_ones(scratch: sa.Engine) -> None:
    config = alembic_config(scratch)
    command.upgrade(config, "0008")
    hour = timedelta(hours=1)
    with scratch.begin() as connection:
        oldest = keep_0008(connection, "a", "first", "in:1", 1, T0)
        resolved = keep_0008(connection, "a", "resolved", "in:1", 2, T0 + hour, T0 + 2 * hour)
        keep_0008(connection, "a", "latest", "in:7", 3, T0 + 3 * hour)
        other_job = keep_0008(connection, "b", "other-job", "in:1", 1, T0)
    command.upgrade(config, "0009")
    with SqlUnitOfWork(scratch) as uow:
        kept = uow.failed_events.list(include_resolved=True)
    assert [(e.id, e.job, e.code, e.source, e.attempts, e.resolved_at) for e in kept] == [
        (oldest, "a", "latest", "in:7", 4, None),
        (resolved, "a", "resolved", "in:1", 2, T0 + 2 * hour),
        (other_job, "b", "other-job", "in:1", 1, None),
    ]
    assert (kept[0].created_at, kept[0].last_attempt_at) == (T0, T0 + 3 * hour)
    with scratch.connect() as connection:
        digests = connection.execute(sa.text("SELECT DISTINCT payload_digest FROM failed_events")).all()
    assert digests == [(hashlib.sha256(PAYLOAD.encode()).hexdigest(),)]
    # The store's add finds the migrated entry: the digests are the ones it computes.
    with SqlUnitOfWork(scratch) as uow:
        again = uow.failed_events.add(
            NewFailedEvent("a", Outcome.FAILED, "again", "reason again", PAYLOAD, "in:9"), T0 + 4 * hour
        )
        uow.commit()
    assert again == oldest


def test_0010_turns_the_ledger_into_pages_keeps_the_cursor_and_marks_units(scratch: sa.Engine) -> None:
    config = alembic_config(scratch)
    command.upgrade(config, "0009")
    hour = timedelta(hours=1)
    ledger = [
        ("u1", "c1", "b1", "Course", "c1", "enrol", "ch", T0),
        ("u1", "c1", "b1", "CourseUnit", "unit1", "start", "ch", T0),
        ("u2", "c2", "b2", "CourseUnit", "unit2", "complete", None, T0),
        ("u1", "c1", "b1", "CourseUnit", "unit1", "complete", "ch", T0 + hour),
        ("u1", "c1", "b1", "Content", "r1", "complete", "ch", T0 + hour),
    ]
    columns = ("userid", "courseid", "batchid", "object_type", "object_id", "action", "channel", "emitted_at")
    with scratch.begin() as connection:
        for user, course, batch in (("u1", "c1", "b1"), ("u2", "c2", "b2"), ("u3", "c1", "b1")):
            connection.execute(
                sa.text(
                    "INSERT INTO user_enrolments (userid, courseid, batchid, active, enrolleddate, datetime, "
                    "contentstatus, progress, completionpercentage, status, certificates) VALUES "
                    "(:u, :c, :b, true, :t, :t, '{}', 0, 0, 1, '[]')"
                ),
                {"u": user, "c": course, "b": batch, "t": T0},
            )
        ids = [
            connection.execute(
                sa.text(
                    f"INSERT INTO audit_ledger ({', '.join(columns)}) VALUES "
                    "(:userid, :courseid, :batchid, :object_type, :object_id, :action, :channel, :emitted_at) "
                    "RETURNING id"
                ),
                dict(zip(columns, row, strict=True)),
            ).scalar_one()
            for row in ledger
        ]
        # The relay had delivered the first three rows.
        connection.execute(
            sa.text("UPDATE relay_cursors SET position = :p WHERE name = 'audit'"), {"p": ids[2]}
        )
    command.upgrade(config, "head")
    with SqlUnitOfWork(scratch) as uow:
        entries = uow.audits.list()
        cursor = uow.cursors.get("audit").position
        pending = uow.audits.read_after(cursor, 1000)
        enrolments = uow.enrolments.get_many(
            [EnrolmentKey("u1", "c1", "b1"), EnrolmentKey("u2", "c2", "b2"), EnrolmentKey("u3", "c1", "b1")]
        )
    migrated = [
        (*astuple(e.record.enrolment), e.record.object_type.value, e.record.object_id, e.record.action.value)
        for e in entries
    ]
    assert migrated == [row[:6] for row in ledger]
    assert [(e.channel, e.emitted_at) for e in entries] == [(row[6], row[7]) for row in ledger]
    assert [e.record.object_id for e in pending] == ["unit1", "r1"]
    marks = {key.user_id: (e.state.units_started, e.state.units_completed) for key, e in enrolments.items()}
    assert marks == {"u1": ({"unit1"}, {"unit1"}), "u2": (set(), {"unit2"}), "u3": (set(), set())}
    command.downgrade(config, "0009")
    with scratch.connect() as connection:
        rows = connection.execute(
            sa.text(f"SELECT id, {', '.join(columns)} FROM audit_ledger ORDER BY id")
        ).all()
        position = connection.execute(
            sa.text("SELECT position FROM relay_cursors WHERE name = 'audit'")
        ).scalar()
    assert [tuple(row[1:7]) for row in rows] == [row[:6] for row in ledger]
    assert position == rows[2].id
    command.upgrade(config, "head")
    with scratch.connect() as connection:
        assert compare_metadata(migration_context(connection), metadata) == []
