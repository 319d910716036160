"""The user directory: import, read, logins, profiles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Body,
    Depends,
    Query,
    Request,
)

from courseinfra.domain.access import Permission
from courseinfra.domain.users import MAX_TEXT, RecordFormat
from courseinfra.entrypoints.api.deps import (
    AUTH,
    INVALID,
    NOT_FOUND,
    AppDep,
    PrincipalDep,
    guard,
    raw_body,
)
from courseinfra.entrypoints.api.errors import error_json
from courseinfra.entrypoints.schemas.common import ErrorResponse, InvalidBody
from courseinfra.entrypoints.schemas.users import (
    ImportOut,
    LoginIn,
    LoginOut,
    RowErrorOut,
    UserOut,
)
from courseinfra.services import users

router = APIRouter(
    tags=["users"],
    dependencies=[guard(read=Permission.READ, write=Permission.MANAGE_USERS)],
    responses=AUTH,
)


USERS_CSV_EXAMPLE = (
    "user_id,username,email,organisation,is_staff,district\nu1,ada,ada@example.org,org1,no,north\n"
)


USERS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The import file as text, its format in the ``format`` parameter (CSV with a header "
        "row, or JSON lines); or a JSON array of user objects (``application/json``).",
        "content": {
            "text/csv": {"schema": {"type": "string"}, "example": USERS_CSV_EXAMPLE},
            "text/plain": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}


#: The format of a body whose ``?format`` is not given, by its content type.
FORMAT_OF_MEDIA_TYPE = {
    "text/csv": RecordFormat.CSV,
    "application/json": RecordFormat.JSON,
    "application/x-ndjson": RecordFormat.JSONL,
    "application/jsonl": RecordFormat.JSONL,
}


@router.post(
    "/v1/users/import",
    response_model=ImportOut,
    responses={422: {"model": ErrorResponse, "description": "Bad rows (in ``details``): nothing imported"}},
    openapi_extra=USERS_BODY,
)
def import_users(
    app: AppDep,
    request: Request,
    body: Annotated[bytes, Depends(raw_body)],
    fmt: Annotated[
        RecordFormat | None,
        Query(alias="format", description="csv, json or jsonl; by default, from the content type."),
    ] = None,
    replace_records: Annotated[
        bool,
        Query(
            alias="replace",
            description="Replace each stored user whole: a field the body leaves out is cleared.",
        ),
    ] = False,
) -> Any:
    """Insert or update users, all or nothing: with any bad row, 422 ``invalid-users`` lists every bad
    row in ``details`` and nothing is imported."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if fmt is None:
        fmt = FORMAT_OF_MEDIA_TYPE.get(media_type)
        if fmt is None and media_type.endswith("+json"):
            fmt = RecordFormat.JSON
        if fmt is None:
            raise InvalidBody("give the body's format: ?format=csv, json or jsonl, or its content type")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidBody(f"the body is not UTF-8: {error}") from None
    report = users.import_users(text, fmt, app.uow_factory, replace_records=replace_records)
    if not report.ok:
        return error_json(
            422,
            "invalid-users",
            f"{len(report.errors)} bad row(s): nothing was imported",
            [RowErrorOut.of(error).model_dump() for error in report.errors],
        )
    return ImportOut.of(report)


@router.get("/v1/users", response_model=list[UserOut], responses=INVALID)
def list_users(
    app: AppDep,
    principal: PrincipalDep,
    organisation: Annotated[str | None, Query(description="Only this organisation's users.")] = None,
    after: Annotated[str, Query(description="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[UserOut]:
    """Users in user id order."""
    found = users.list_users(app.uow_factory, organisation=organisation, after=after, limit=limit)
    return [UserOut.of(user, reveal=principal.pii) for user in found]


@router.get("/v1/users/{user_id}", response_model=UserOut, responses={**INVALID, **NOT_FOUND})
def get_user(app: AppDep, principal: PrincipalDep, user_id: str) -> UserOut:
    """One user."""
    return UserOut.of(users.get_user(user_id, app.uow_factory), reveal=principal.pii)


@router.post(
    "/v1/users/{user_id}/logins",
    response_model=LoginOut,
    responses={**INVALID, **NOT_FOUND},
)
def record_login(
    app: AppDep, principal: PrincipalDep, user_id: str, body: Annotated[LoginIn | None, Body()] = None
) -> LoginOut:
    """Record a login; ``last_login_at`` only moves forward (a late report changes nothing)."""
    user, moved = users.record_login(user_id, app.uow_factory(), body.at if body else None)
    return LoginOut.of(user, reveal=principal.pii, recorded=moved)


@router.patch(
    "/v1/users/{user_id}/profile",
    response_model=UserOut,
    responses={**INVALID, **NOT_FOUND},
)
def update_profile(
    app: AppDep,
    principal: PrincipalDep,
    user_id: str,
    fields: Annotated[
        dict[str, str | None],
        Body(
            examples=[{"district": "north", "school": None}],
            description="Fields to set; null removes one.",
            # The names check_profile_changes takes: not blank, at most MAX_TEXT characters.
            json_schema_extra={"propertyNames": {"minLength": 1, "maxLength": MAX_TEXT, "pattern": r"\S"}},
        ),
    ],
) -> UserOut:
    """Set profile fields (a merge patch: a null value removes the field); answers the user."""
    user = users.update_profile(user_id, fields, app.uow_factory())
    return UserOut.of(user, reveal=principal.pii)
