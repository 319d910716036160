"""Errors as answers: ``{"error": {"code", "message"}}``, the status from the error's kind."""

from __future__ import annotations

import re
from typing import Any

from fastapi import (
    FastAPI,
    Request,
)
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.services.groups import UnknownUsers

#: The HTTP status of each kind of domain error.
STATUS_OF_KIND: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 422,
    ErrorKind.MALFORMED: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.STALE: 412,
    ErrorKind.UPSTREAM: 502,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.PRECONDITION_REQUIRED: 428,
}


def status_of(error: DomainError) -> int:
    """The HTTP status answering ``error``: its kind's."""
    return STATUS_OF_KIND[error.kind]


def error_json(status: int, code: str, message: str, details: list[Any] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status)


def unknown_users(error: UnknownUsers) -> JSONResponse:
    """The 422 of a change naming users not in the user directory: the members import's code, every
    unknown user in ``details`` (``{field, user_id, reason}``)."""
    return error_json(422, error.code, str(error), error.details())


HTTP_CODES = {400: "invalid-body", 404: "not-found", 405: "method-not-allowed", 415: "unsupported-media-type"}


def allowed_methods(api: FastAPI, path: str) -> str | None:
    """The methods the OpenAPI document lists for ``path`` (its most specific path template, as OpenAPI
    matches: ``/v1/groups/refresh`` before ``/v1/groups/{group_id}``); None for a path it does not list.
    Starlette's 405 names only the methods of the first route matching the path (``POST`` for
    ``/v1/groups``, which ``GET`` serves too)."""
    matching = [
        template
        for template in api.openapi()["paths"]
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path)
    ]
    if not matching:
        return None
    template = min(matching, key=lambda template: template.count("{"))
    return ", ".join(sorted(method.upper() for method in api.openapi()["paths"][template]))


def install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(DomainError)
    async def domain_error(_request: Request, error: DomainError) -> JSONResponse:
        response = error_json(status_of(error), error.code, str(error))
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="courseinfra"'
        return response

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = jsonable_encoder(error.errors())
        message = "; ".join(
            f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg', '')}"
            for problem in problems
        )
        return error_json(422, "invalid-request", message or "invalid request", problems)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        response = error_json(
            error.status_code, HTTP_CODES.get(error.status_code, f"http-{error.status_code}"), error.detail
        )
        if error.headers:
            response.headers.update(error.headers)
        if error.status_code == 405 and (allow := allowed_methods(api, request.url.path)) is not None:
            response.headers["Allow"] = allow
        return response

    @api.exception_handler(Exception)
    async def internal_error(_request: Request, error: Exception) -> JSONResponse:
        return error_json(500, "internal-error", f"internal error ({type(error).__name__})")
