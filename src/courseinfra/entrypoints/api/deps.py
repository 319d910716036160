"""The dependencies routes declare (``Annotated``), and the error answers they document."""

from __future__ import annotations

from typing import Annotated, Any, cast

import orjson
from fastapi import (
    Depends,
    FastAPI,
    Request,
)
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from courseinfra.bootstrap import App
from courseinfra.domain.access import Forbidden, Permission, Principal, Unauthenticated
from courseinfra.domain.hierarchy import holds_nul
from courseinfra.domain.trail import Actor
from courseinfra.entrypoints.schemas.common import ErrorResponse, InvalidBody
from courseinfra.services import access, trail
from courseinfra.services.access.scopes import Reach


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
    description="An API token (`courseinfra tokens create --name NAME --role ROLE`) or a JWT of the "
    "OAuth2 provider named by COURSEINFRA_JWT_ISSUER.",
)


def authenticate_bearer(app: App, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """Who a bearer credential acts for. 401 ``unauthenticated`` without one, or with one that is
    unknown, revoked or expired (or an invalid JWT)."""
    if credentials is None:
        raise Unauthenticated("this route needs a bearer token (Authorization: Bearer <token>)")
    return access.authenticate(credentials.credentials, app.uow_factory, jwt=app.jwt)


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """Who the request acts for: its bearer token's (see :func:`authenticate_bearer`). It is also who
    the request's changes are written by in the trail: set here, in the request's own context, which
    the route's thread inherits."""
    principal = await run_in_threadpool(authenticate_bearer, get_app(request), credentials)
    origin = request.client.host if request.client else None
    trail.acting_as(Actor(principal.subject, principal.role.value, "api", origin))
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


READS = frozenset({"GET", "HEAD"})


def get_reach(request: Request, principal: PrincipalDep) -> Reach:
    return Reach(principal, get_app(request).uow_factory)


ReachDep = Annotated[Reach, Depends(get_reach)]


#: What a token scoped to courses or organisations may reach: the routers that declare ``scoped``.
SCOPED_FEATURES = "batches, enrolments, user groups and reports"


def guard(*, read: Permission, write: Permission, scoped: bool = False) -> Any:
    """A router's dependency: a read (GET) needs ``read``, any other method ``write``; 403 ``forbidden``
    beyond the token's role. A token scoped to courses reaches only routers declared ``scoped``, and
    there only the courses of its scopes: a route's ``batch_id``, ``course_id`` or ``group_id`` path
    parameter is checked here (routes without one filter or check what they read themselves)."""

    def check(request: Request, reach: ReachDep) -> Principal:
        return require_route(request, reach, read=read, write=write, scoped=scoped)

    return Depends(check)


def require_route(
    request: Request, reach: Reach, *, read: Permission, write: Permission, scoped: bool
) -> Principal:
    """The check of :func:`guard` (the API's and the console's): the request's method needs ``read``
    or ``write``; a principal scoped to courses needs a ``scoped`` route, and the courses of its scopes
    in the route's ``course_id``, ``batch_id`` and ``group_id`` path parameters."""
    principal = reach.principal
    principal.require(read if request.method in READS else write)
    if principal.scoped:
        if not scoped:
            raise Forbidden(f"a token scoped to courses reaches only {SCOPED_FEATURES}")
        params = request.path_params
        if "course_id" in params:
            reach.require_course(params["course_id"])
        if "batch_id" in params:
            reach.require_batch(params["batch_id"])
        if "group_id" in params:
            reach.require_group(params["group_id"])
    return principal


def needs(permission: Permission) -> Any:
    """A route's dependency: the token's role must grant ``permission``, to the whole instance (a token
    scoped to courses is refused)."""

    def check(principal: PrincipalDep) -> Principal:
        principal.require(permission)
        if principal.scoped:
            raise Forbidden(f"a token scoped to courses reaches only {SCOPED_FEATURES}")
        return principal

    return Depends(check)


async def refuse_nul_in_json_body(request: Request) -> None:
    """No store keeps a NUL character in text (PostgreSQL's text and JSONB cannot): the JSON body of a
    route that FastAPI reads is 422 ``invalid-body`` when it holds one (``\\u0000``), on every backend,
    before anything is stored (on PostgreSQL it was a 500). A route that reads its body itself (events,
    imports) keeps such input as it documents."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return
    body = await request.body()
    if b"\\u0000" not in body:  # in JSON text, a NUL is always escaped
        return
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if holds_nul(parsed):
        raise InvalidBody("a NUL character (\\u0000) in the body: no store keeps one")


async def raw_body(request: Request) -> bytes:
    return await request.body()


Responses = dict[int | str, dict[str, Any]]


#: What every route behind a token may answer.
AUTH: Responses = {
    401: {"model": ErrorResponse, "description": "No valid bearer token (unauthenticated)"},
    403: {
        "model": ErrorResponse,
        "description": "The token's role or scopes do not grant this (forbidden)",
    },
}


INVALID: Responses = {422: {"model": ErrorResponse, "description": "Invalid request"}}


#: A change naming users: its 422 may also be users not in the user directory.
UNKNOWN_USERS: Responses = {
    422: {
        "model": ErrorResponse,
        "description": "Invalid request, or users not in the user directory (invalid-members-file, as "
        "a members import; every one in ``details``: ``{field, user_id, reason}``): nothing changed",
    }
}


NOT_FOUND: Responses = {404: {"model": ErrorResponse, "description": "Not found"}}


CONFLICT: Responses = {409: {"model": ErrorResponse, "description": "Conflict"}}


#: What a route whose JSON body FastAPI reads answers to a body it cannot read (not UTF-8, nested too
#: deeply): every such route documents it (see ``create_app``).
UNREADABLE_BODY: Responses = {
    400: {"model": ErrorResponse, "description": "A body that cannot be read (invalid-body)"}
}
