"""SQL stores of batches, enrolments, activity aggregates and the relays' cursors."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from courseinfra.adapters.sql.store import aware, upsert
from courseinfra.adapters.sql.tables import (
    course_batch,
    relay_cursors,
    user_activity_agg,
    user_enrolments,
)
from courseinfra.domain.enrolments import CourseBatch, Enrolment
from courseinfra.domain.progress import (
    EnrolmentKey,
    EnrolmentState,
    EnrolmentStatus,
    StatusTimes,
    UnitMetrics,
)
from courseinfra.domain.reports import HISTOGRAM_BUCKETS, histogram_bucket
from courseinfra.services.enrolments.ports import ActivityStore, BatchProgress, BatchStore, EnrolmentStore
from courseinfra.services.events.ports import RelayCursor, RelayCursors
from courseinfra.services.unit_of_work import AlreadyExists

# The aggregator's two bulk writes as driver statements (placeholders ``?``; ``%s`` on PostgreSQL),
# values encoded once: SQLAlchemy's per-row parameter processing was a tenth of the job.
SAVE_PROGRESS = (
    "UPDATE user_enrolments SET contentstatus = ?{jsonb}, status = ?, progress = ?, "
    "completionpercentage = ?, completedon = ?, lastreadcontentid = ?, lastreadcontentstatus = ?, "
    "datetime = ?, auditmarks = ?{json}, statustimes = ?{jsonb} WHERE userid = ? AND courseid = ? AND batchid = ?"
)
UPSERT_ACTIVITY = (
    "INSERT INTO user_activity_agg (activity_type, activity_id, user_id, context_id, agg, agg_last_updated) "
    "VALUES (?, ?, ?, ?, ?{json}, ?{json}) ON CONFLICT (activity_type, activity_id, user_id, context_id) "
    "DO UPDATE SET agg = excluded.agg, agg_last_updated = excluded.agg_last_updated"
)


ENROLMENT_COLUMNS = (
    "userid, courseid, batchid, contentstatus, status, progress, completionpercentage, completedon, "
    "lastreadcontentid, lastreadcontentstatus, datetime, auditmarks, active, enrolleddate, addedby, "
    "certificates, mode, statustimes"
)
SQLITE_ENROLMENTS = (
    f"SELECT {', '.join('e.' + c.strip() for c in ENROLMENT_COLUMNS.split(','))} FROM json_each(?) AS k "
    "JOIN user_enrolments AS e ON e.userid = json_extract(k.value, '$[0]') "
    "AND e.courseid = json_extract(k.value, '$[1]') AND e.batchid = json_extract(k.value, '$[2]')"
)


ENROLMENT_NAMES = tuple(name.strip() for name in ENROLMENT_COLUMNS.split(","))
_JSON_COLUMNS = ("contentstatus", "auditmarks", "certificates", "statustimes")
_TIME_COLUMNS = ("completedon", "datetime", "enrolleddate")


def _sqlite_row(values: Sequence[Any]) -> dict[str, Any]:
    """The driver's row of :data:`ENROLMENT_COLUMNS` decoded as SQLAlchemy would: JSON text to values,
    timestamp text to datetimes (UTC, stored without zone)."""
    row = dict(zip(ENROLMENT_NAMES, values, strict=True))
    for name in _JSON_COLUMNS:
        if row[name] is not None:
            row[name] = orjson.loads(row[name])
    for name in _TIME_COLUMNS:
        if row[name] is not None:
            row[name] = datetime.fromisoformat(row[name])
    return row


def _driver_sql(connection: sa.Connection, statement: str) -> str:
    if connection.dialect.name == "postgresql":
        return statement.replace("?", "%s").format(jsonb="::jsonb", json="::json")
    return statement.format(jsonb="", json="")


def _stamper(connection: sa.Connection) -> Callable[[datetime | None], Any]:
    """How a timestamp is passed to the driver: as it is to psycopg, and to SQLite as the text
    SQLAlchemy's ``DateTime`` stores (UTC)."""
    if connection.dialect.name == "postgresql":
        return lambda value: value

    def text(value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    return text


class SqlBatchStore(BatchStore):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def add(self, batch: CourseBatch) -> None:
        try:
            with self.connection.begin_nested():
                self.connection.execute(
                    course_batch.insert().values(
                        batchid=batch.batch_id,
                        courseid=batch.course_id,
                        name=batch.name,
                        description=batch.description,
                        startdate=batch.start_date,
                        enddate=batch.end_date,
                        enrollmentenddate=batch.enrollment_end_date,
                        enrollmenttype=batch.enrollment_type,
                        status=batch.status,
                        createdfor=list(batch.created_for),
                        mentors=list(batch.mentors),
                        createdby=batch.created_by,
                        createddate=batch.created_at,
                    )
                )
        except sa.exc.IntegrityError:
            raise AlreadyExists(f"batch {batch.batch_id} exists") from None

    @staticmethod
    def _from_row(row: sa.Row[Any]) -> CourseBatch:
        return CourseBatch(
            batch_id=row.batchid,
            course_id=row.courseid,
            name=row.name,
            created_at=aware(row.createddate),
            description=row.description,
            start_date=row.startdate,
            end_date=row.enddate,
            enrollment_end_date=row.enrollmentenddate,
            enrollment_type=row.enrollmenttype,
            status=row.status,
            created_for=tuple(row.createdfor),
            mentors=tuple(row.mentors),
            created_by=row.createdby,
        )

    def get(self, batch_id: str) -> CourseBatch | None:
        row = self.connection.execute(
            sa.select(course_batch).where(course_batch.c.batchid == batch_id)
        ).one_or_none()
        return None if row is None else self._from_row(row)

    def every(self) -> list[CourseBatch]:
        query = sa.select(course_batch).order_by(course_batch.c.batchid)
        return [self._from_row(row) for row in self.connection.execute(query)]

    def list(self, *, course_id: str | None = None, after: str = "", limit: int = 100) -> list[CourseBatch]:
        query = (
            sa.select(course_batch)
            .where(course_batch.c.batchid > after)
            .order_by(course_batch.c.batchid)
            .limit(limit)
        )
        if course_id is not None:
            query = query.where(course_batch.c.courseid == course_id)
        return [self._from_row(row) for row in self.connection.execute(query)]


def _enrolment(row: Mapping[Any, Any]) -> Enrolment:
    """An enrolment from its decoded columns (a SQLAlchemy row's mapping, or :func:`_sqlite_row`)."""
    marks = row["auditmarks"] or {}
    completed_on = row["completedon"]
    state = EnrolmentState(
        key=EnrolmentKey(row["userid"], row["courseid"], row["batchid"]),
        content_status=dict(row["contentstatus"]),
        status=EnrolmentStatus(row["status"]),
        progress=row["progress"],
        completion_percentage=row["completionpercentage"],
        completed_on=aware(completed_on) if completed_on else None,
        last_read_content_id=row["lastreadcontentid"],
        last_read_content_status=row["lastreadcontentstatus"],
        last_updated=aware(row["datetime"]),
        units_started=frozenset(marks.get("started", ())),
        units_completed=frozenset(marks.get("completed", ())),
        status_times=status_times(row["statustimes"]),
    )
    return Enrolment(
        state=state,
        active=bool(row["active"]),
        enrolled_date=aware(row["enrolleddate"]),
        added_by=row["addedby"],
        certificates=tuple(row["certificates"]),
        mode=row["mode"],
    )


def status_times(document: Mapping[str, Any] | None) -> dict[str, StatusTimes]:
    """The ``statustimes`` document as the domain reads it: content id to (started, completed)."""
    return {content: (stamps[0], stamps[1]) for content, stamps in (document or {}).items()}


def audit_marks(state: EnrolmentState) -> dict[str, list[str]]:
    """The ``auditmarks`` document of a state: the units emitted, sorted; empty lists left out."""
    marks = {"started": sorted(state.units_started), "completed": sorted(state.units_completed)}
    return {name: units for name, units in marks.items() if units}


class SqlEnrolmentStore(EnrolmentStore):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def add(self, enrolment: Enrolment) -> bool:
        state = enrolment.state
        statement = upsert(self.connection, user_enrolments).values(
            userid=state.key.user_id,
            courseid=state.key.course_id,
            batchid=state.key.batch_id,
            active=enrolment.active,
            addedby=enrolment.added_by,
            enrolleddate=enrolment.enrolled_date,
            datetime=state.last_updated or enrolment.enrolled_date,
            contentstatus=dict(state.content_status),
            lastreadcontentid=state.last_read_content_id,
            lastreadcontentstatus=state.last_read_content_status,
            progress=state.progress,
            completionpercentage=state.completion_percentage,
            status=int(state.status),
            completedon=state.completed_on,
            certificates=list(enrolment.certificates),
            mode=enrolment.mode,
            auditmarks=audit_marks(state),
            statustimes=dict(state.status_times),
            unenrolledon=None if enrolment.active else state.last_updated or enrolment.enrolled_date,
        )
        # RETURNING, not rowcount: psycopg does not report a row count for this statement reliably.
        inserted = self.connection.execute(
            statement.on_conflict_do_nothing().returning(user_enrolments.c.userid)
        )
        return inserted.first() is not None

    def set_active(self, key: EnrolmentKey, active: bool, at: datetime, *, mode: str | None = None) -> bool:
        # The first time a learner left is kept: leaving again changes nothing.
        left_at = sa.literal(at, type_=user_enrolments.c.unenrolledon.type)
        left = None if active else sa.func.coalesce(user_enrolments.c.unenrolledon, left_at)
        values: dict[str, Any] = {"active": active, "datetime": at, "unenrolledon": left}
        if mode is not None:
            values["mode"] = mode
        result = self.connection.execute(
            user_enrolments.update()
            .where(
                user_enrolments.c.userid == key.user_id,
                user_enrolments.c.courseid == key.course_id,
                user_enrolments.c.batchid == key.batch_id,
            )
            .values(**values)
        )
        return result.rowcount == 1

    def get_many(
        self, keys: Sequence[EnrolmentKey], *, for_update: bool = False
    ) -> dict[EnrolmentKey, Enrolment]:
        found: dict[EnrolmentKey, Enrolment] = {}
        unique = sorted(set(keys))
        # SQLite needs no row locks: a unit of work that writes holds the database's write lock from
        # its start. PostgreSQL locks the rows in key order (the ORDER BY is below the lock), the
        # order every writer of many enrolments uses.
        if self.connection.dialect.name == "postgresql" and unique:
            # One statement of three arrays joined to the table, whatever the number of keys: a tuple
            # IN list would be a new statement at every size for the driver.
            text_array = postgresql.ARRAY(sa.String)
            wanted = (
                sa.func.unnest(
                    sa.literal([k.user_id for k in unique], type_=text_array),
                    sa.literal([k.course_id for k in unique], type_=text_array),
                    sa.literal([k.batch_id for k in unique], type_=text_array),
                )
                .table_valued("userid", "courseid", "batchid")
                .render_derived()
            )
            e = user_enrolments.c
            query = sa.select(user_enrolments).join(
                wanted,
                sa.and_(
                    e.userid == wanted.c.userid,
                    e.courseid == wanted.c.courseid,
                    e.batchid == wanted.c.batchid,
                ),
            )
            if for_update:
                query = query.order_by(e.userid, e.courseid, e.batchid).with_for_update(of=user_enrolments)
            for row in self.connection.execute(query).all():
                enrolment = _enrolment(row._mapping)
                found[enrolment.key] = enrolment
            return found
        if not unique:
            return found
        # SQLite: one driver statement over a JSON array of keys, whatever their number, and rows
        # decoded without SQLAlchemy's per-column processing (the read was a sixth of the job).
        as_json = orjson.dumps([(k.user_id, k.course_id, k.batch_id) for k in unique]).decode()
        for values in self.connection.exec_driver_sql(SQLITE_ENROLMENTS, (as_json,)).all():
            enrolment = _enrolment(_sqlite_row(values))
            found[enrolment.key] = enrolment
        return found

    def save_progress(self, states: Sequence[EnrolmentState]) -> None:
        if not states:
            return
        stamp = _stamper(self.connection)
        self.connection.exec_driver_sql(
            _driver_sql(self.connection, SAVE_PROGRESS),
            [
                (
                    orjson.dumps(dict(s.content_status)).decode(),
                    int(s.status),
                    s.progress,
                    s.completion_percentage,
                    stamp(s.completed_on),
                    s.last_read_content_id,
                    s.last_read_content_status,
                    stamp(s.last_updated),
                    orjson.dumps(audit_marks(s)).decode(),
                    orjson.dumps(s.status_times).decode(),
                    s.key.user_id,
                    s.key.course_id,
                    s.key.batch_id,
                )
                for s in states
            ],
        )

    def list_for_user(self, user_id: str) -> list[Enrolment]:
        query = (
            sa.select(user_enrolments)
            .where(user_enrolments.c.userid == user_id)
            .order_by(user_enrolments.c.courseid, user_enrolments.c.batchid)
        )
        return [_enrolment(row._mapping) for row in self.connection.execute(query)]

    def batch_progress(self, batch_id: str) -> BatchProgress:
        # Two GROUP BYs read from ix_user_enrolments_batch_progress alone (no row is visited): a few
        # hundred groups come back whatever the batch's size, bucketed here. Grouping by the raw
        # columns follows the index's order (no sort); the day is taken in UTC (SQLite keeps UTC text,
        # PostgreSQL an instant).
        e = user_enrolments.c
        by_progress = (
            sa.select(e.active, e.status, e.completionpercentage, sa.func.count())
            .where(e.batchid == batch_id)
            .group_by(e.active, e.status, e.completionpercentage)
        )
        histogram = [0] * len(HISTOGRAM_BUCKETS)
        enrolled = started = completed = left = 0
        for active, status, percent, count in self.connection.execute(by_progress):
            if not active:
                left += count
                continue
            enrolled += count
            histogram[histogram_bucket(percent)] += count
            started += count if status >= EnrolmentStatus.IN_PROGRESS else 0
            completed += count if status >= EnrolmentStatus.COMPLETED else 0
        if self.connection.dialect.name == "postgresql":
            day: sa.ColumnElement[Any] = sa.cast(sa.func.timezone("UTC", e.completedon), sa.Date)
        else:
            day = sa.func.substr(e.completedon, 1, 10, type_=sa.String())
        by_day = (
            sa.select(day, sa.func.count())
            .where(e.batchid == batch_id, e.completedon.is_not(None))
            .group_by(day)
            .order_by(day)
        )
        completions = tuple(
            (when if isinstance(when, date) else date.fromisoformat(when), count)
            for when, count in self.connection.execute(by_day)
        )
        return BatchProgress(enrolled, started, completed, left, tuple(histogram), completions)

    def list_for_batch(
        self, batch_id: str, *, after_user: str = "", limit: int = 1000, for_update: bool = False
    ) -> list[Enrolment]:
        query = (
            sa.select(user_enrolments)
            .where(user_enrolments.c.batchid == batch_id, user_enrolments.c.userid > after_user)
            .order_by(user_enrolments.c.userid, user_enrolments.c.courseid)
            .limit(limit)
        )
        if for_update and self.connection.dialect.name == "postgresql":
            query = query.with_for_update(of=user_enrolments)
        return [_enrolment(row._mapping) for row in self.connection.execute(query)]


class SqlActivityStore(ActivityStore):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def upsert(self, metrics: Sequence[UnitMetrics], at: datetime) -> None:
        if not metrics:
            return
        stamp = int(at.timestamp() * 1000)
        rows = {
            (m.activity_type, m.activity_id, m.user_id, m.context_id): (
                m.activity_type,
                m.activity_id,
                m.user_id,
                m.context_id,
                orjson.dumps(m.agg).decode(),
                orjson.dumps(dict.fromkeys(m.agg, stamp)).decode(),
            )
            for m in metrics
        }
        self.connection.exec_driver_sql(_driver_sql(self.connection, UPSERT_ACTIVITY), list(rows.values()))

    def for_user(self, user_id: str, context_id: str) -> list[UnitMetrics]:
        query = (
            sa.select(user_activity_agg)
            .where(user_activity_agg.c.user_id == user_id, user_activity_agg.c.context_id == context_id)
            .order_by(user_activity_agg.c.activity_type, user_activity_agg.c.activity_id)
        )
        return [
            UnitMetrics(
                row.activity_type,
                row.activity_id,
                row.user_id,
                row.context_id,
                int(row.agg.get("completedCount", 0)),
                int(row.agg.get("leafNodesCount", 0)),
                int(row.agg.get("progress", 0)),
            )
            for row in self.connection.execute(query)
        ]


class SqlRelayCursors(RelayCursors):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def get(self, name: str) -> RelayCursor:
        row = self.connection.execute(sa.select(relay_cursors).where(relay_cursors.c.name == name)).first()
        if row is None:
            return RelayCursor(name, 0)
        updated_at = aware(row.updated_at) if row.updated_at is not None else None
        return RelayCursor(name, row.position, row.attempts, row.last_error, updated_at)

    def advance(self, name: str, position: int, at: datetime) -> None:
        self._upsert(name, {"position": position, "attempts": 0, "last_error": None, "updated_at": at})

    def record_failure(self, name: str, error: str, at: datetime) -> None:
        statement = upsert(self.connection, relay_cursors).values(
            name=name, position=0, attempts=1, last_error=error, updated_at=at
        )
        self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[relay_cursors.c.name],
                set_={"attempts": relay_cursors.c.attempts + 1, "last_error": error, "updated_at": at},
            )
        )

    def _upsert(self, name: str, values: dict[str, Any]) -> None:
        statement = upsert(self.connection, relay_cursors).values(name=name, **values)
        self.connection.execute(
            statement.on_conflict_do_update(index_elements=[relay_cursors.c.name], set_=values)
        )
