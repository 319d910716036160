"""The dependencies routes declare (``Annotated``), and the error answers they document."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import (
    Depends,
    FastAPI,
    Request,
)
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from courseinfra.bootstrap import App
from courseinfra.domain.access import Permission, Principal, Unauthenticated
from courseinfra.entrypoints.schemas.common import ErrorResponse
from courseinfra.services import access


def get_app(request: Request) -> App:
    return app_of(request.app)


def app_of(api: FastAPI) -> App:
    """The :class:`App` that ``api`` serves; set by :func:`create_app` or, at start-up, by its lifespan."""
    app = getattr(api.state, "courseinfra", None)
    if app is None:
        raise RuntimeError("the application is not started (its lifespan has not run)")
    return cast(App, app)


AppDep = Annotated[App, Depends(get_app)]


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token: `courseinfra tokens create --name NAME --role ROLE`.",
)


def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """Who the request acts for: its bearer token's. 401 ``unauthenticated`` without one, or with one
    that is unknown, revoked or expired."""
    if credentials is None:
        raise Unauthenticated("this route needs a bearer token (Authorization: Bearer <token>)")
    return access.authenticate(credentials.credentials, get_app(request).uow_factory)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


READS = frozenset({"GET", "HEAD"})


def guard(*, read: Permission, write: Permission) -> Any:
    """A router's dependency: a read (GET) needs ``read``, any other method ``write``; 403 ``forbidden``
    beyond the token's role."""

    def check(request: Request, principal: PrincipalDep) -> Principal:
        principal.require(read if request.method in READS else write)
        return principal

    return Depends(check)


def needs(permission: Permission) -> Any:
    """A route's dependency: the token's role must grant ``permission``."""

    def check(principal: PrincipalDep) -> Principal:
        principal.require(permission)
        return principal

    return Depends(check)


async def raw_body(request: Request) -> bytes:
    return await request.body()


Responses = dict[int | str, dict[str, Any]]


#: What every route behind a token may answer.
AUTH: Responses = {
    401: {"model": ErrorResponse, "description": "No valid bearer token (unauthenticated)"},
    403: {"model": ErrorResponse, "description": "The token's role does not grant this (forbidden)"},
}


INVALID: Responses = {422: {"model": ErrorResponse, "description": "Invalid request"}}


NOT_FOUND: Responses = {404: {"model": ErrorResponse, "description": "Not found"}}


CONFLICT: Responses = {409: {"model": ErrorResponse, "description": "Conflict"}}
