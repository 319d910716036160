"""Events in (each routed to its job) and the event streams relayed events leave by."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    Query,
    Request,
)

from courseinfra.domain.access import Permission
from courseinfra.entrypoints.api.deps import (
    AUTH,
    INVALID,
    NOT_FOUND,
    AppDep,
    guard,
    raw_body,
)
from courseinfra.entrypoints.api.event_bodies import event_lines
from courseinfra.entrypoints.schemas.events import IngestOut, StreamEntryOut
from courseinfra.services.events.ingest import ingest
from courseinfra.services.events.streams import read_stream

router = APIRouter(
    tags=["events"],
    dependencies=[guard(read=Permission.READ, write=Permission.INGEST)],
    responses=AUTH,
)


EVENT_LINE_EXAMPLE = (
    '{"eid":"BE_JOB_REQUEST","edata":{"action":"post-publish-process","identifier":"do_1",'
    '"mimeType":"application/vnd.ekstep.content-collection"}}\n'
)


EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Events as JSON lines (one event a line; blank lines ignored), or a JSON array of "
        "events (or one event object); no body is no events. A line or an element that is not an event "
        "is kept as a failed event, with its reason.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}, "example": EVENT_LINE_EXAMPLE},
            "text/plain": {"schema": {"type": "string"}, "example": EVENT_LINE_EXAMPLE},
            "application/json": {"schema": {"anyOf": [{"type": "array"}, {"type": "object"}]}},
        },
    }
}


@router.post("/v1/events", response_model=IngestOut, responses=INVALID, openapi_extra=EVENTS_BODY)
def ingest_events(app: AppDep, request: Request, body: Annotated[bytes, Depends(raw_body)]) -> IngestOut:
    """Process events, each routed to its job and finished before this returns.

    The answer is 200 even when events were not processed: they are kept (``/v1/failed-events``) and
    listed in ``rejected``.
    """
    lines = event_lines(body, request.headers.get("content-type", ""), app.settings.ingest_max_line_bytes)
    report = ingest(lines, "api", app.router, app.uow_factory, chunk_size=app.settings.ingest_chunk_size)
    return IngestOut.of(report)


@router.get(
    "/v1/streams/{event_type}",
    response_model=list[StreamEntryOut],
    responses={**INVALID, **NOT_FOUND},
)
def read_event_stream(
    app: AppDep,
    event_type: str,
    after: Annotated[str | None, Query(description="Only entries after this position (paging).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[StreamEntryOut]:
    """Relayed events of one type (``courseinfra.learning.audit.emitted.v1``, ...), oldest first, from
    the event stream the settings name (404 when there is none)."""
    entries = read_stream(app.stream, event_type, after=after, limit=limit)
    return [StreamEntryOut.of(entry) for entry in entries]
