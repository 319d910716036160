"""SQL reads of progress reports, and the report runs' table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from courseinfra.adapters.sql.enrolments import status_times
from courseinfra.adapters.sql.store import aware, upsert
from courseinfra.adapters.sql.tables import report_runs, user_activity_agg, user_enrolments, users
from courseinfra.domain.reports import LearnerRow, ProgressHistory, ReportRun, RunStatus
from courseinfra.services.reports.ports import ReportReader, ReportRuns

UNIT_ACTIVITY = "CourseUnit"


class SqlReportReader(ReportReader):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def learners(
        self,
        batch_id: str,
        unit_ids: Sequence[str],
        *,
        after_user: str = "",
        limit: int = 1000,
        before: datetime | None = None,
    ) -> list[LearnerRow]:
        e = user_enrolments.c
        columns = [
            e.userid,
            e.courseid,
            e.enrolleddate,
            e.status,
            e.completionpercentage,
            e.completedon,
            e.certificates,
            users.c.name,
            users.c.email,
        ]
        if before is None:
            # Unenrolled learners (active false) are not participants any more: they are left out.
            participants: sa.ColumnElement[bool] = e.active.is_(True)
        else:
            # Participants then: enrolled before, and not yet gone (or still here).
            columns += [e.contentstatus, e.statustimes, e.datetime]
            participants = sa.and_(
                e.enrolleddate < before, sa.or_(e.active.is_(True), e.unenrolledon >= before)
            )
        page = self.connection.execute(
            sa.select(*columns)
            .select_from(user_enrolments.outerjoin(users, users.c.user_id == e.userid))
            .where(e.batchid == batch_id, e.userid > after_user, participants)
            .order_by(e.userid)
            .limit(limit)
        ).all()
        if not page:
            return []
        progress = (
            self._unit_progress(batch_id, unit_ids, page[0].userid, page[-1].userid) if before is None else {}
        )
        position = {unit_id: index for index, unit_id in enumerate(unit_ids)}
        rows = []
        for row in page:
            units = [0] * len(unit_ids)
            for unit_id, value in progress.get(row.userid, ()):
                units[position[unit_id]] = value
            history = (
                None
                if before is None
                else ProgressHistory(
                    content_status=row.contentstatus,
                    status_times=status_times(row.statustimes),
                    last_updated=aware(row.datetime),
                    certificates=tuple(row.certificates),
                )
            )
            rows.append(
                LearnerRow(
                    user_id=row.userid,
                    name=row.name,
                    email=row.email,
                    enrolled_on=aware(row.enrolleddate),
                    course_id=row.courseid,
                    status=row.status,
                    completion_percentage=row.completionpercentage,
                    completed_on=None if row.completedon is None else aware(row.completedon),
                    certificate_issued=bool(row.certificates),
                    unit_progress=tuple(units),
                    history=history,
                )
            )
        return rows

    def _unit_progress(
        self, batch_id: str, unit_ids: Sequence[str], first_user: str, last_user: str
    ) -> dict[str, list[tuple[str, int]]]:
        """Per user of the page, (unit, progress) of the units they touched: one range read of the
        activity table's primary key per unit, bounded by the page's first and last user."""
        if not unit_ids:
            return {}
        a = user_activity_agg.c
        found: dict[str, list[tuple[str, int]]] = {}
        # .all(): one fetch of the page, not a row-by-row walk through the result.
        rows = self.connection.execute(
            sa.select(a.user_id, a.activity_id, a.agg).where(
                a.activity_type == UNIT_ACTIVITY,
                a.activity_id.in_(list(unit_ids)),
                a.user_id.between(first_user, last_user),
                a.context_id == f"cb:{batch_id}",
            )
        ).all()
        for user_id, unit_id, agg in rows:
            found.setdefault(user_id, []).append((unit_id, int(agg.get("progress", 0))))
        return found


def _run_values(run: ReportRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "as_of": run.as_of,
        "status": run.status.value,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "requested_batches": list(run.requested_batches),
        "batches_total": run.batches_total,
        "batches_done": run.batches_done,
        "rows_written": run.rows_written,
        "error": run.error,
        "outcome": dict(run.outcome),
    }


def _run(row: sa.Row[Any]) -> ReportRun:
    return ReportRun(
        run_id=row.run_id,
        as_of=row.as_of,
        status=RunStatus(row.status),
        started_at=aware(row.started_at),
        requested_batches=tuple(row.requested_batches),
        batches_total=row.batches_total,
        batches_done=row.batches_done,
        rows_written=row.rows_written,
        finished_at=None if row.finished_at is None else aware(row.finished_at),
        error=row.error,
        outcome=row.outcome,
    )


class SqlReportRuns(ReportRuns):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def add(self, run: ReportRun) -> None:
        self.connection.execute(report_runs.insert().values(**_run_values(run)))

    def save(self, run: ReportRun) -> None:
        values = _run_values(run)
        statement = upsert(self.connection, report_runs).values(**values)
        self.connection.execute(
            statement.on_conflict_do_update(index_elements=[report_runs.c.run_id], set_=values)
        )

    def get(self, run_id: str) -> ReportRun | None:
        row = self.connection.execute(sa.select(report_runs).where(report_runs.c.run_id == run_id)).first()
        return None if row is None else _run(row)

    def list(self, *, limit: int = 50) -> list[ReportRun]:
        query = (
            sa.select(report_runs)
            .order_by(report_runs.c.started_at.desc(), report_runs.c.run_id)
            .limit(limit)
        )
        return [_run(row) for row in self.connection.execute(query)]

    def count_by_status(self) -> dict[str, int]:
        status = report_runs.c.status
        query = sa.select(status, sa.func.count()).group_by(status)
        return {str(name): int(count) for name, count in self.connection.execute(query)}
