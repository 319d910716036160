"""The dependencies routes declare (``Annotated``), and the error answers they document."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import (
    Depends,
    FastAPI,
    Request,
)

from courseinfra.bootstrap import App
from courseinfra.entrypoints.schemas.common import ErrorResponse


def get_app(request: Request) -> App:
    return app_of(request.app)


def app_of(api: FastAPI) -> App:
    """The :class:`App` that ``api`` serves; set by :func:`create_app` or, at start-up, by its lifespan."""
    app = getattr(api.state, "courseinfra", None)
    if app is None:
        raise RuntimeError("the application is not started (its lifespan has not run)")
    return cast(App, app)


AppDep = Annotated[App, Depends(get_app)]


async def raw_body(request: Request) -> bytes:
    return await request.body()


Responses = dict[int | str, dict[str, Any]]


INVALID: Responses = {422: {"model": ErrorResponse, "description": "Invalid request"}}


NOT_FOUND: Responses = {404: {"model": ErrorResponse, "description": "Not found"}}


CONFLICT: Responses = {409: {"model": ErrorResponse, "description": "Conflict"}}
