"""JSON shapes of batches, enrolments, activity, users, reports and user groups, shared by the CLI and
the API so that both print the same document. Field names are the column names of Sunbird's tables (``course_batch``,
``user_enrolments``, ``user_activity_agg``); dates and times are ISO 8601 strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from courseinfra.domain.criteria import CriteriaRegistry, criteria_json
from courseinfra.domain.groups import UserGroup
from courseinfra.domain.progress import UnitMetrics
from courseinfra.domain.reports import ReportSelection
from courseinfra.domain.users import RowError, User
from courseinfra.services.groups import GroupView
from courseinfra.services.ports import (
    CourseBatch,
    Enrolment,
    FailedEvent,
    Member,
    MembershipChange,
    RefreshResult,
    ReportRun,
    StreamEntry,
)
from courseinfra.services.users import ImportReport

#: The enrolment types a batch can have (``course_batch.enrollmenttype``).
ENROLMENT_TYPES = ("open", "invite-only")

COURSE_ACTIVITY = "Course"
UNIT_ACTIVITY = "CourseUnit"


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def batch_json(batch: CourseBatch) -> dict[str, Any]:
    """A row of ``course_batch``."""
    return {
        "batchid": batch.batch_id,
        "courseid": batch.course_id,
        "name": batch.name,
        "description": batch.description,
        "startdate": _iso(batch.start_date),
        "enddate": _iso(batch.end_date),
        "enrollmentenddate": _iso(batch.enrollment_end_date),
        "enrollmenttype": batch.enrollment_type,
        "status": batch.status,
        "createdfor": list(batch.created_for),
        "mentors": list(batch.mentors),
        "createdby": batch.created_by,
        "createddate": _iso(batch.created_at),
    }


def enrolment_json(enrolment: Enrolment) -> dict[str, Any]:
    """A row of ``user_enrolments``; ``datetime`` is when it was last updated."""
    state = enrolment.state
    return {
        "userid": state.key.user_id,
        "courseid": state.key.course_id,
        "batchid": state.key.batch_id,
        "active": enrolment.active,
        "addedby": enrolment.added_by,
        "enrolleddate": _iso(enrolment.enrolled_date),
        "datetime": _iso(state.last_updated),
        "contentstatus": dict(state.content_status),
        "lastreadcontentid": state.last_read_content_id,
        "lastreadcontentstatus": state.last_read_content_status,
        "progress": state.progress,
        "completionpercentage": state.completion_percentage,
        "status": int(state.status),
        "completedon": _iso(state.completed_on),
        "certificates": [dict(certificate) for certificate in enrolment.certificates],
        "mode": enrolment.mode,
    }


def activity_json(metrics: Sequence[UnitMetrics]) -> dict[str, Any]:
    """The ``user_activity_agg`` rows of one enrolment: the course's (``null`` before any progress was
    aggregated) and each unit's, by unit id."""
    course = next((m.agg for m in metrics if m.activity_type == COURSE_ACTIVITY), None)
    units = {m.activity_id: m.agg for m in metrics if m.activity_type == UNIT_ACTIVITY}
    return {"course": course, "units": dict(sorted(units.items()))}


def failed_event_json(event: FailedEvent) -> dict[str, Any]:
    """A kept event: what ``failed list --json`` prints and ``GET /v1/failed-events`` returns."""
    return {
        "id": event.id,
        "job": event.job,
        "outcome": event.outcome.value,
        "code": event.code,
        "reason": event.reason,
        "source": event.source,
        "attempts": event.attempts,
        "created_at": _iso(event.created_at),
        "resolved_at": _iso(event.resolved_at),
        "payload": event.payload,
    }


def stream_entry_json(entry: StreamEntry) -> dict[str, Any]:
    message = entry.message
    return {"position": entry.position, "id": message.id, "key": message.key, "payload": message.payload}


def user_json(user: User) -> dict[str, Any]:
    """A user of the directory (a row of ``users``); the same keys an import reads back."""
    return {
        "user_id": user.user_id,
        "username": user.username,
        "email": user.email,
        "name": user.name,
        "organisation": user.organisation,
        "last_login_at": _iso(user.last_login_at),
        "is_staff": user.is_staff,
        "profile": dict(user.profile),
        "created_at": _iso(user.created_at),
        "updated_at": _iso(user.updated_at),
    }


def row_error_json(error: RowError) -> dict[str, Any]:
    """A bad row of an import file: its line (a JSON array's item number), a stable code, the reason."""
    return {"line": error.line, "code": error.code, "reason": error.reason}


def import_report_json(report: ImportReport) -> dict[str, Any]:
    """Counts of an import, and its bad rows (when there are any, nothing was imported)."""
    return {
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "errors": [row_error_json(error) for error in report.errors],
    }


def report_run_json(run: ReportRun) -> dict[str, Any]:
    """A report run: its status and progress, and when it succeeded, what it reported and skipped."""
    return {
        "run_id": run.run_id,
        "as_of": run.as_of.isoformat(),
        "status": run.status.value,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "requested_batches": list(run.requested_batches),
        "batches_total": run.batches_total,
        "batches_done": run.batches_done,
        "rows_written": run.rows_written,
        "error": run.error,
        "outcome": dict(run.outcome),
    }


def report_selection_json(selection: ReportSelection[CourseBatch]) -> dict[str, Any]:
    """The batches a report run would cover, and every other ongoing batch with its reason."""
    return {
        "selected": [{"batch_id": b.batch_id, "course_id": b.course_id} for b in selection.selected],
        "skipped": [
            {"batch_id": b.batch_id, "course_id": b.course_id, "reason": reason.value}
            for b, reason in selection.skipped
        ],
        "skipped_counts": selection.skipped_counts(),
    }


def group_summary_json(group: UserGroup) -> dict[str, Any]:
    """A group's definition and membership summary, without its include and exclude lists (what
    ``groups list`` prints and ``GET /v1/groups`` returns)."""
    return {
        "group_id": group.group_id,
        "name": group.name,
        "scope": str(group.scope),
        "description": group.description,
        "enabled": group.enabled,
        "frozen": group.frozen,
        "criteria": None if group.criteria is None else criteria_json(group.criteria),
        "version": group.version,
        "member_count": group.member_count,
        "last_refreshed_at": _iso(group.last_refreshed_at),
        "created_at": _iso(group.created_at),
        "updated_at": _iso(group.updated_at),
    }


def group_json(view: GroupView) -> dict[str, Any]:
    """A group with its include and exclude lists (sorted); ``version`` is what ``If-Match`` (the ETag
    ``"<group_id>.<version>"``) and ``--if-version`` name."""
    return {
        **group_summary_json(view.group),
        "include": sorted(view.include),
        "exclude": sorted(view.exclude),
    }


def refresh_json(result: RefreshResult) -> dict[str, Any]:
    """What a refresh changed: how many joined and left, and the member count after it."""
    return {"joined": result.joined, "left": result.left, "member_count": result.member_count}


def refresh_all_json(results: Mapping[str, RefreshResult]) -> dict[str, Any]:
    """Each refreshed group's result, by group id."""
    return {group_id: refresh_json(result) for group_id, result in sorted(results.items())}


def preview_json(result: RefreshResult) -> dict[str, Any]:
    """What a refresh would change (nothing was written): counts, a sample of the ids (sorted) and the
    member count after it."""
    return {
        **refresh_json(result),
        "joined_ids": list(result.joined_ids),
        "left_ids": list(result.left_ids),
    }


def member_json(member: Member) -> dict[str, Any]:
    """A member of a group, when it joined and why (``criteria`` or ``included``)."""
    return {"user_id": member.user_id, "joined_at": _iso(member.joined_at), "reason": member.reason}


def membership_change_json(change: MembershipChange) -> dict[str, Any]:
    """A join or a leave of a group's history; ``id`` pages (``after``)."""
    return {
        "id": change.id,
        "group_id": change.group_id,
        "user_id": change.user_id,
        "change": change.change,
        "at": _iso(change.at),
        "reason": change.reason,
    }


def members_import_json(view: GroupView, result: RefreshResult | None) -> dict[str, Any]:
    """After a members import: the sizes of the group's new overrides, its version, and the refresh
    (null for a frozen group, whose membership is not changed)."""
    return {
        "group_id": view.group.group_id,
        "version": view.group.version,
        "include": len(view.include),
        "exclude": len(view.exclude),
        "refresh": None if result is None else refresh_json(result),
    }


def criteria_types_json(registry: CriteriaRegistry) -> list[dict[str, Any]]:
    """Every registered criterion type's schema (config JSON schema, operators, scopes, facts), in
    registration order: what a UI builds its forms from."""
    return [criterion_type.schema() for criterion_type in registry.types.values()]
