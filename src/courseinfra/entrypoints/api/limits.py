"""Limits on what a request may send, applied before any route reads it: the body's size (413
``body-too-large``), for a JSON body how deeply it nests (422 ``invalid-body``), so that no parser
ever recurses beyond what it can (Python's json gives up near 1,000 levels with a bare 400), and no
NUL character in the URL (422 ``invalid-request``)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from courseinfra.domain.hierarchy import nesting_depth
from courseinfra.entrypoints.api.errors import error_json
from courseinfra.entrypoints.schemas.common import ErrorResponse

#: What every route that reads a body may answer.
TOO_LARGE: dict[int | str, dict[str, object]] = {
    413: {"model": ErrorResponse, "description": "The body is larger than COURSEINFRA_MAX_BODY_BYTES"}
}

#: The deepest JSON body read: deeper than any document the API takes (a hierarchy of MAX_DEPTH
#: levels nests about 2 x MAX_DEPTH), far below what parsers survive.
MAX_JSON_DEPTH = 512


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class RequestLimits:
    """ASGI middleware: reads the body (at most ``max_body_bytes``) before the application, refuses a
    larger one with 413 whether or not it declared its length, and a JSON body nested deeper than
    :data:`MAX_JSON_DEPTH` with 422; then hands the application the body it read."""

    def __init__(self, app: ASGIApp, max_body_bytes: Callable[[], int]) -> None:
        self.app = app
        self.limit = max_body_bytes  # read per request: the application is built at start-up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]):
            # No store keeps a NUL in text (PostgreSQL refuses it), so no id or name holds one.
            await error_json(422, "invalid-request", "a NUL character (%00) in the URL")(scope, receive, send)
            return
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        headers = {key.lower(): value for key, value in scope["headers"]}
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(limit, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(limit, scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _is_json(headers.get(b"content-type", b"").decode("latin-1")):
            refusal = self._too_deep(body)
            if refusal is not None:
                await error_json(422, "invalid-body", refusal)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _too_deep(body: bytes) -> str | None:
        if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
            return None  # cannot nest deeper than it has brackets: most bodies are not parsed here
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            if "depth limit" in str(error) or "recursion" in str(error).lower():
                return f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels"
            return None  # not JSON: the route's own parsing answers, with the position of the fault
        if nesting_depth(parsed, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            return f"the JSON body nests more than {MAX_JSON_DEPTH} levels deep"
        return None

    @staticmethod
    async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_json(
            413,
            "body-too-large",
            f"the request body is larger than {limit} bytes (COURSEINFRA_MAX_BODY_BYTES)",
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
