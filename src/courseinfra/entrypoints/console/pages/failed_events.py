"""The failed events page: the kept events (paged, by job and code), one event with its raw line and
reason, replay one or every one matching the filter; with the open counts and the jobs' counters.

The same use cases as ``courseinfra failed list|replay`` and ``/v1/failed-events``, and the same
permission (``operate``, for reading as for replaying: a raw line is shown to whoever the API shows it
to, and a principal scoped to courses reaches no failed event).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from courseinfra.domain.access import Permission
from courseinfra.domain.job_requests import Outcome
from courseinfra.entrypoints.console.web import AppDep, FormDep, Page, form_text, render, see_other
from courseinfra.entrypoints.schemas.common import MAX_ID
from courseinfra.services import events, failed_events
from courseinfra.services.events.ingest import INGEST_JOB, replay_failed

PAGE = Page(
    label="Failed events",
    path="/failed-events",
    order=20,
    read=Permission.OPERATE,
    write=Permission.OPERATE,
)
router = PAGE.router()

#: Events on one page of the list.
PAGE_SIZE = 50
#: A job name or code as a filter: as long as the store keeps them.
NAME = 255

Job = Annotated[str | None, Query(max_length=NAME, description="Only this job's events.")]
Code = Annotated[str | None, Query(max_length=NAME, description="Only events of this code.")]


def blank_is_none(value: str | None) -> str | None:
    """An empty filter field (the form's "any") is no filter."""
    return value.strip() or None if value is not None else None


@router.get("/failed-events", response_class=HTMLResponse)
def failed_list(
    request: Request,
    app: AppDep,
    job: Job = None,
    code: Code = None,
    skipped: bool = False,
    resolved: bool = False,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    replayed: Annotated[int | None, Query(ge=0)] = None,
    fixed: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    job, code = blank_is_none(job), blank_is_none(code)
    outcomes = (Outcome.FAILED, Outcome.SKIPPED) if skipped else (Outcome.FAILED,)
    found = failed_events.list_failed_events(
        app.uow_factory,
        job=job,
        code=code,
        outcomes=outcomes,
        include_resolved=resolved,
        after_id=after,
        limit=PAGE_SIZE + 1,
    )
    shown = found[:PAGE_SIZE]
    counters = events.job_counters(app.uow_factory)
    open_counts = failed_events.open_counts(app.uow_factory)
    jobs = sorted({INGEST_JOB, *(j.name for j in app.router.jobs), *counters, *open_counts})
    return render(
        request,
        "failed_events/list.html",
        {
            "events": shown,
            "next_after": shown[-1].id if len(found) > PAGE_SIZE else None,
            "filters": {"job": job, "code": code, "skipped": skipped, "resolved": resolved},
            "after": after,
            "jobs": jobs,
            "counters": counters,
            "open_counts": open_counts,
            "open_total": sum(open_counts.values()),
            "replayed": replayed,
            "fixed": fixed,
        },
        page=PAGE,
    )


@router.get("/failed-events/{event_id}", response_class=HTMLResponse)
def failed_event(
    request: Request,
    app: AppDep,
    event_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    replay: Annotated[str | None, Query(pattern="^(resolved|failed)$")] = None,
) -> Response:
    [event] = failed_events.get_failed_events([event_id], app.uow_factory)
    return render(request, "failed_events/detail.html", {"event": event, "replay": replay}, page=PAGE)


@router.post("/failed-events/{event_id}/replay")
def replay_one(
    request: Request, app: AppDep, _form: FormDep, event_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> Response:
    """Run the kept event through its job again (as ``courseinfra failed replay ID``)."""
    kept = failed_events.get_failed_events([event_id], app.uow_factory)
    [result] = replay_failed(kept, app.router, app.uow_factory)
    return see_other(
        request, f"/failed-events/{event_id}", replay="resolved" if result.resolved else "failed"
    )


@router.post("/failed-events/replay")
def replay_matching(request: Request, app: AppDep, form: FormDep) -> Response:
    """Run every unresolved failed event of the filter (job, code) again (as ``courseinfra failed replay
    --all [--job JOB]``)."""
    job = form_text(form, "job", max_length=NAME)
    code = form_text(form, "code", max_length=NAME)
    kept = failed_events.open_failed_events(app.uow_factory, job=job, code=code)
    results = replay_failed(kept, app.router, app.uow_factory) if kept else []
    return see_other(
        request,
        "/failed-events",
        job=job,
        code=code,
        replayed=len(results),
        fixed=sum(result.resolved for result in results),
    )
