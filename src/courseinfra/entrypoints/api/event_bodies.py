"""Request bodies of events, read as the intake's JSON lines (``/v1/events``, ``/v1/openedx/events``)."""

from __future__ import annotations

import io
import json

import orjson

from courseinfra.entrypoints.schemas.common import InvalidBody
from courseinfra.services.events.ingest import BadLine, read_lines


def event_lines(body: bytes, content_type: str, max_line_bytes: int) -> list[str | BadLine]:
    """The body as JSON lines: a JSON array (``application/json``) gives one line per element; any other
    body is split on line feeds only, as a file is read (a JSON string may hold U+2028), and a line (or
    an element) that is not UTF-8 or is too long is kept as a failure, as ingest keeps it."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return json_lines(body, max_line_bytes)
    return list(read_lines(io.BytesIO(body), max_bytes=max_line_bytes))


def json_lines(body: bytes, max_line_bytes: int) -> list[str | BadLine]:
    """A JSON body (an array of events, or one event) as one line per element; :class:`InvalidBody`
    (422) when it is not JSON, or neither an array nor an object. An element is not checked here: one
    that is not an event is kept by ingest, with its reason."""
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
    lines = b"\n".join(_dumped(item) for item in parsed)
    return list(read_lines(io.BytesIO(lines), max_bytes=max_line_bytes))


def _dumped(item: object) -> bytes:
    """One event as a line. orjson writes 255 levels at most; the body is at most 512 deep (the
    request limits), which Python's json writes."""
    try:
        return orjson.dumps(item)
    except TypeError:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
