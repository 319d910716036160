"""The enrolment commands: ``enrol``, ``unenrol``, ``enrolments``, ``activity`` and ``audit``."""

from __future__ import annotations

from typing import Annotated

import typer

from courseinfra.domain.progress import EnrolmentKey
from courseinfra.entrypoints.cli.common import (
    BatchArg,
    CourseArg,
    Failure,
    UserArg,
    application,
    emit,
    emit_lines,
    err,
)
from courseinfra.entrypoints.schemas.common import MAX_ID
from courseinfra.entrypoints.schemas.enrolments import ActivityOut, EnrolmentOut, EnrolOut, RecomputedOut
from courseinfra.services import course_metrics, enrolments

app = typer.Typer(no_args_is_help=True, help="Enrolments and their progress.")
activity_app = typer.Typer(no_args_is_help=True, help="Course and unit metrics of an enrolment.")
audit_app = typer.Typer(no_args_is_help=True, help="The AUDIT events emitted for enrolments.")


def enrol_command(
    user: UserArg,
    batch: BatchArg,
    added_by: Annotated[str | None, typer.Option("--added-by", help="Who enrolled the user.")] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="The enrolment's mode (track); default audit.")
    ] = None,
) -> None:
    """Enrol USER in BATCH (again, if they left it: their progress is kept); print the enrolment with
    ``created``, false if it existed."""
    with application() as app:
        enrolment, created = enrolments.enrol(user, batch, app.uow_factory(), added_by=added_by, mode=mode)
    emit(EnrolOut.of(enrolment, created=created))


def unenrol_command(user: UserArg, batch: BatchArg) -> None:
    """Mark USER's enrolment in BATCH inactive (its progress is kept); print the enrolment."""
    with application() as app:
        enrolment = enrolments.unenrol(user, batch, app.uow_factory())
    emit(EnrolmentOut.of(enrolment))


@app.command("get")
def enrolments_get(user: UserArg, course: CourseArg, batch: BatchArg) -> None:
    """One enrolment with its progress (the columns of ``user_enrolments``)."""
    with application() as app:
        enrolment = enrolments.get_enrolment(EnrolmentKey(user, course, batch), app.uow_factory)
    emit(EnrolmentOut.of(enrolment))


@app.command("recompute")
def enrolments_recompute(
    course: Annotated[str | None, typer.Option("--course", help="Every batch of this course.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Every participant of this batch.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="With --batch: this learner only.")] = None,
) -> None:
    """Re-derive progress and metrics from the stored statuses and the course's current relation cache
    (after a cache rebuild or a fix of the rules); emit only the AUDIT events not emitted before."""
    if (course is None) == (batch is None):
        raise Failure("give exactly one of --course and --batch", exit_code=2)
    if user is not None and batch is None:
        raise Failure("--user needs --batch", exit_code=2)
    with application() as app:
        done = course_metrics.recompute_enrolments(
            app.views, app.uow_factory, course_id=course, batch_id=batch, user_id=user
        )
    emit(RecomputedOut.of(done))


@app.command("list")
def enrolments_list(
    user: Annotated[str | None, typer.Option("--user", help="A user's enrolments.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="A batch's participants.")] = None,
    after: Annotated[
        str, typer.Option("--after", help="With --batch: only user ids above this one (paging).")
    ] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
) -> None:
    """The enrolments of a user (by course and batch) or of a batch (by user), as JSON lines."""
    if (user is None) == (batch is None):
        raise Failure("give exactly one of --user and --batch", exit_code=2)
    if user is not None and after:
        raise Failure("--after pages the participants of a --batch", exit_code=2)
    with application() as app:
        if batch is not None:
            found = enrolments.batch_enrolments(batch, app.uow_factory, after_user=after, limit=limit)
        else:
            assert user is not None
            found = enrolments.user_enrolments(user, app.uow_factory)[:limit]
    emit_lines(EnrolmentOut.of(e) for e in found)


@activity_app.command("get")
def activity_get(user: UserArg, course: CourseArg, batch: BatchArg) -> None:
    """The course's and each unit's metrics of an enrolment (``user_activity_agg``)."""
    key = EnrolmentKey(user, course, batch)
    with application() as app:
        metrics = enrolments.activity(key, app.uow_factory)
    emit(ActivityOut.of(metrics))


@audit_app.command("list")
def audit_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's events.")] = None,
    course: Annotated[str | None, typer.Option("--course", help="Only this course's events.")] = None,
    after: Annotated[
        int, typer.Option("--after", min=0, max=MAX_ID, help="Only entry ids above this one.")
    ] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
) -> None:
    """AUDIT events in the order they were emitted, as JSON lines (telemetry v3). When the page is full,
    standard error tells the ``--after`` of the next one."""
    with application() as app:
        entries = enrolments.audit_events(
            app.uow_factory, user_id=user, course_id=course, after_id=after, limit=limit
        )
    emit_lines(entry.telemetry for entry in entries)
    if len(entries) == limit:
        err.print(f"more may follow: --after {entries[-1].id}", highlight=False)
