"""The ``batches`` commands: create, list and read course batches."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from courseinfra.domain.enrolments import CourseBatch
from courseinfra.entrypoints.cli.common import BatchArg, application, as_date, emit, emit_lines
from courseinfra.entrypoints.schemas.batches import BatchOut
from courseinfra.services import enrolments

app = typer.Typer(no_args_is_help=True, help="Course batches: create, list, read.")


class EnrolmentType(StrEnum):
    OPEN = "open"
    INVITE_ONLY = "invite-only"


DateOption = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], metavar="YYYY-MM-DD")]


@app.command("create")
def batches_create(
    course: Annotated[str, typer.Option("--course", help="The course (a stored hierarchy's root).")],
    batch: Annotated[str, typer.Option("--batch", help="The new batch's id.")],
    name: Annotated[str, typer.Option("--name")],
    description: Annotated[str | None, typer.Option("--description")] = None,
    start: DateOption = None,
    end: DateOption = None,
    enrolment_end: Annotated[
        datetime | None,
        typer.Option(
            "--enrolment-end", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="Last day to enrol."
        ),
    ] = None,
    enrolment_type: Annotated[EnrolmentType, typer.Option("--enrolment-type")] = EnrolmentType.OPEN,
    mentors: Annotated[list[str] | None, typer.Option("--mentor", help="A mentor (repeatable).")] = None,
    created_for: Annotated[
        list[str] | None, typer.Option("--created-for", help="An organisation (repeatable).")
    ] = None,
    created_by: Annotated[str | None, typer.Option("--created-by")] = None,
) -> None:
    """Create a batch of a course; print it as JSON."""
    new = CourseBatch(
        batch_id=batch,
        course_id=course,
        name=name,
        created_at=datetime.now(UTC),
        description=description,
        start_date=as_date(start),
        end_date=as_date(end),
        enrollment_end_date=as_date(enrolment_end),
        enrollment_type=enrolment_type.value,
        created_for=tuple(created_for or ()),
        mentors=tuple(mentors or ()),
        created_by=created_by,
    )
    with application() as app:
        created = enrolments.create_batch(new, app.uow_factory())
    emit(BatchOut.of(created))


@app.command("list")
def batches_list(
    course: Annotated[str | None, typer.Option("--course", help="Only this course's batches.")] = None,
    after: Annotated[str, typer.Option("--after", help="Only batch ids above this one (paging).")] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Batches in batch id order, as JSON lines."""
    with application() as app:
        found = enrolments.list_batches(app.uow_factory, course_id=course, after=after, limit=limit)
    emit_lines(BatchOut.of(b) for b in found)


@app.command("get")
def batches_get(batch: BatchArg) -> None:
    """One batch as JSON."""
    with application() as app:
        emit(BatchOut.of(enrolments.get_batch(batch, app.uow_factory)))
