"""SQL stores of batches, enrolments, activity aggregates and the relays' cursors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from courseinfra.adapters.sql.store import aware, upsert
from courseinfra.adapters.sql.tables import (
    course_batch,
    relay_cursors,
    user_activity_agg,
    user_enrolments,
)
from courseinfra.domain.progress import (
    EnrolmentKey,
    EnrolmentState,
    EnrolmentStatus,
    UnitMetrics,
)
from courseinfra.services.ports import (
    ActivityStore,
    AlreadyExists,
    BatchStore,
    CourseBatch,
    Enrolment,
    EnrolmentStore,
    RelayCursor,
    RelayCursors,
)

KEY_CHUNK = 500


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

    def ongoing(self, as_of: date) -> list[CourseBatch]:
        query = (
            sa.select(course_batch)
            .where(sa.or_(course_batch.c.enddate.is_(None), course_batch.c.enddate >= as_of))
            .order_by(course_batch.c.batchid)
        )
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


def _enrolment(row: sa.Row[Any]) -> Enrolment:
    key = EnrolmentKey(row.userid, row.courseid, row.batchid)
    marks = row.auditmarks or {}
    state = EnrolmentState(
        key=key,
        content_status=dict(row.contentstatus),
        status=EnrolmentStatus(row.status),
        progress=row.progress,
        completion_percentage=row.completionpercentage,
        completed_on=aware(row.completedon) if row.completedon else None,
        last_read_content_id=row.lastreadcontentid,
        last_read_content_status=row.lastreadcontentstatus,
        last_updated=aware(row.datetime),
        units_started=frozenset(marks.get("started", ())),
        units_completed=frozenset(marks.get("completed", ())),
    )
    return Enrolment(
        state=state,
        active=bool(row.active),
        enrolled_date=aware(row.enrolleddate),
        added_by=row.addedby,
        certificates=tuple(row.certificates),
        mode=row.mode,
    )


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
        )
        # RETURNING, not rowcount: psycopg does not report a row count for this statement reliably.
        inserted = self.connection.execute(
            statement.on_conflict_do_nothing().returning(user_enrolments.c.userid)
        )
        return inserted.first() is not None

    def set_active(self, key: EnrolmentKey, active: bool, at: datetime, *, mode: str | None = None) -> bool:
        values: dict[str, Any] = {"active": active, "datetime": at}
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
            for row in self.connection.execute(query):
                enrolment = _enrolment(row)
                found[enrolment.key] = enrolment
            return found
        for start in range(0, len(unique), KEY_CHUNK):
            chunk = unique[start : start + KEY_CHUNK]
            columns = sa.tuple_(
                user_enrolments.c.userid, user_enrolments.c.courseid, user_enrolments.c.batchid
            )
            query = sa.select(user_enrolments).where(
                columns.in_([(k.user_id, k.course_id, k.batch_id) for k in chunk])
            )
            for row in self.connection.execute(query):
                enrolment = _enrolment(row)
                found[enrolment.key] = enrolment
        return found

    def save_progress(self, states: Sequence[EnrolmentState]) -> None:
        if not states:
            return
        statement = (
            user_enrolments.update()
            .where(
                user_enrolments.c.userid == sa.bindparam("k_user"),
                user_enrolments.c.courseid == sa.bindparam("k_course"),
                user_enrolments.c.batchid == sa.bindparam("k_batch"),
            )
            .values(
                contentstatus=sa.bindparam("contentstatus", type_=user_enrolments.c.contentstatus.type),
                status=sa.bindparam("status"),
                progress=sa.bindparam("progress"),
                completionpercentage=sa.bindparam("completionpercentage"),
                completedon=sa.bindparam("completedon", type_=user_enrolments.c.completedon.type),
                lastreadcontentid=sa.bindparam("lastreadcontentid"),
                lastreadcontentstatus=sa.bindparam("lastreadcontentstatus"),
                datetime=sa.bindparam("updated", type_=user_enrolments.c.datetime.type),
                auditmarks=sa.bindparam("auditmarks", type_=user_enrolments.c.auditmarks.type),
            )
        )
        self.connection.execute(
            statement,
            [
                {
                    "k_user": s.key.user_id,
                    "k_course": s.key.course_id,
                    "k_batch": s.key.batch_id,
                    "contentstatus": dict(s.content_status),
                    "status": int(s.status),
                    "progress": s.progress,
                    "completionpercentage": s.completion_percentage,
                    "completedon": s.completed_on,
                    "lastreadcontentid": s.last_read_content_id,
                    "lastreadcontentstatus": s.last_read_content_status,
                    "updated": s.last_updated,
                    "auditmarks": audit_marks(s),
                }
                for s in states
            ],
        )

    def list_for_user(self, user_id: str) -> list[Enrolment]:
        query = (
            sa.select(user_enrolments)
            .where(user_enrolments.c.userid == user_id)
            .order_by(user_enrolments.c.courseid, user_enrolments.c.batchid)
        )
        return [_enrolment(row) for row in self.connection.execute(query)]

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
        return [_enrolment(row) for row in self.connection.execute(query)]


class SqlActivityStore(ActivityStore):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def upsert(self, metrics: Sequence[UnitMetrics], at: datetime) -> None:
        if not metrics:
            return
        stamp = int(at.timestamp() * 1000)
        statement = upsert(self.connection, user_activity_agg)
        statement = statement.on_conflict_do_update(
            index_elements=[
                user_activity_agg.c.activity_type,
                user_activity_agg.c.activity_id,
                user_activity_agg.c.user_id,
                user_activity_agg.c.context_id,
            ],
            set_={"agg": statement.excluded.agg, "agg_last_updated": statement.excluded.agg_last_updated},
        )
        rows = {
            (m.activity_type, m.activity_id, m.user_id, m.context_id): {
                "activity_type": m.activity_type,
                "activity_id": m.activity_id,
                "user_id": m.user_id,
                "context_id": m.context_id,
                "agg": m.agg,
                "agg_last_updated": dict.fromkeys(m.agg, stamp),
            }
            for m in metrics
        }
        self.connection.execute(statement, list(rows.values()))

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
