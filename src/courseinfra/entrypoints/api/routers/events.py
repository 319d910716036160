"""Events in (each routed to its job) and the event streams relayed events leave by."""

from __future__ import annotations

import io
import json
from typing import Annotated, Any

import orjson
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
from courseinfra.entrypoints.schemas.common import InvalidBody
from courseinfra.entrypoints.schemas.events import IngestOut, StreamEntryOut
from courseinfra.services.events.ingest import BadLine, ingest, read_lines
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


def event_lines(body: bytes, content_type: str, max_line_bytes: int) -> list[str | BadLine]:
    """The body as JSON lines: a JSON array (``application/json``) gives one line per element; any other
    body is split on line feeds only, as a file is read (a JSON string may hold U+2028), and a line (or
    an element) that is not UTF-8 or is too long is kept as a failure, as ingest keeps it."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise InvalidBody(f"the body is not JSON: {error}") from None
        if isinstance(parsed, dict):
            parsed = [parsed]
        if not isinstance(parsed, list):
            raise InvalidBody(f"a JSON body is an array of events or one event, not {type(parsed).__name__}")
        # One line per element (a dumped element holds no line feed), read as a file's lines are: an
        # element longer than a line may be is kept cut short, as ingest keeps it.
        body = b"\n".join(_dumped(item) for item in parsed)
    return list(read_lines(io.BytesIO(body), max_bytes=max_line_bytes))


def _dumped(item: object) -> bytes:
    """One event as a line. orjson writes 255 levels at most; the body is at most 512 deep (the
    request limits), which Python's json writes."""
    try:
        return orjson.dumps(item)
    except TypeError:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


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
