"""User groups: define them by criteria, refresh, preview, explain, import members."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Body,
    Depends,
    Header,
    Query,
    Request,
    Response,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from courseinfra.domain.access import Forbidden, Permission
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.groups import VersionConflict
from courseinfra.entrypoints.api.deps import (
    AUTH,
    CONFLICT,
    INVALID,
    NOT_FOUND,
    UNKNOWN_USERS,
    AppDep,
    PrincipalDep,
    ReachDep,
    Responses,
    guard,
    raw_body,
)
from courseinfra.entrypoints.api.errors import error_json, unknown_users
from courseinfra.entrypoints.schemas.common import MAX_ID, ErrorResponse, InvalidBody
from courseinfra.entrypoints.schemas.groups import (
    SCOPE_PATTERN,
    ExplainOut,
    GroupChangedOut,
    GroupDefinitionIn,
    GroupIn,
    GroupOut,
    GroupPatchIn,
    GroupRefreshOut,
    GroupSummaryOut,
    HistoryPageOut,
    MembersImportOut,
    MembersPageOut,
    PreviewIn,
    PreviewOut,
    RefreshOut,
    criteria_types_json,
    masked_criteria,
)
from courseinfra.services import groups
from courseinfra.services.groups.ports import RefreshResult

router = APIRouter(
    tags=["groups"],
    dependencies=[guard(read=Permission.READ, write=Permission.MANAGE_GROUPS, scoped=True)],
    responses=AUTH,
)


IF_MATCH_DESCRIPTION = (
    'The group\'s ETag ("<group_id>.<version>") as read: the change is refused (412 '
    "version-conflict) if the group changed since; * changes it whatever its version. Required on "
    "PUT, PATCH and DELETE (428 precondition-required without it); optional on a members import."
)


#: What If-Match takes: one entity tag or * (anything else is 400 invalid-if-match).
IF_MATCH_PATTERN = r'^[ \t]*(\*|(W/)?"[^"]*")[ \t]*$'


#: If-Match, read as optional: without it, PUT, PATCH and DELETE answer 428 precondition-required (not
#: a validation error). Each route documents it with :func:`if_match_header`.
IfMatch = Annotated[str | None, Header(alias="If-Match", include_in_schema=False)]


def if_match_header(*, required: bool) -> dict[str, Any]:
    """The If-Match parameter as the OpenAPI document states it (a route's ``openapi_extra``): a
    string, never null, required on a change that must say what it was made against."""
    return {
        "parameters": [
            {
                "name": "If-Match",
                "in": "header",
                "required": required,
                "description": IF_MATCH_DESCRIPTION,
                "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
            }
        ]
    }


ETAG = re.compile(r'^(W/)?"([^"]*)"$')


ETAG_VERSION = re.compile(r"^[0-9]{1,18}$")


class InvalidIfMatch(DomainError):
    """An If-Match header that is not one entity tag (or ``*``)."""

    code = "invalid-if-match"
    kind = ErrorKind.MALFORMED


def expected_version(if_match: str | None, group_id: str) -> int | None:
    """The version If-Match names: None without the header or with ``*``. Not one entity tag: 400
    ``invalid-if-match``; an entity tag that cannot be this group's current one (a weak one, another
    group's, not ``"<group_id>.<version>"``): 412 ``version-conflict``, as a stale version."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = ETAG.match(if_match.strip())
    if match is None:
        raise InvalidIfMatch(f'If-Match {if_match!r}: expected one entity tag, "<group_id>.<version>", or *')
    weak, tag = match.groups()
    name, _, version = tag.rpartition(".")
    if weak or name != group_id or not ETAG_VERSION.match(version):
        raise VersionConflict(f"If-Match {if_match.strip()} is not an entity tag of group {group_id}")
    return int(version)


def _changed(view: groups.GroupView, result: RefreshResult | None, response: Response) -> GroupChangedOut:
    response.headers["ETag"] = view.group.etag
    return GroupChangedOut.of_change(view, result)


PRECONDITION: Responses = {
    400: {"model": ErrorResponse, "description": "A malformed If-Match (invalid-if-match)"},
    412: {"model": ErrorResponse, "description": "The group changed since it was read (version-conflict)"},
}


REQUIRED_PRECONDITION: Responses = {
    **PRECONDITION,
    428: {"model": ErrorResponse, "description": "No If-Match header (precondition-required)"},
}


class PreconditionRequired(DomainError):
    code = "precondition-required"
    kind = ErrorKind.PRECONDITION_REQUIRED


def required_version(if_match: str | None, group_id: str) -> int | None:
    """:func:`expected_version` of a change that must say what it was made against: without If-Match,
    428 ``precondition-required`` (``If-Match: *`` changes the group whatever its version)."""
    if if_match is None:
        raise PreconditionRequired(
            f'changing group {group_id} needs If-Match: its ETag as read ("{group_id}.<version>"), or * '
            "to change it whatever its version"
        )
    return expected_version(if_match, group_id)


ETAG_HEADER: dict[str, Any] = {"ETag": {"description": 'The group\'s "<group_id>.<version>"'}}


@router.get("/v1/criteria/types", responses=INVALID)
def criteria_types(app: AppDep) -> list[dict[str, Any]]:
    """Every registered criterion type (shipped and from plugins): its operators, scopes, the facts it
    reads and its config's JSON schema, from which a UI builds its forms."""
    return criteria_types_json(app.registry)


@router.post(
    "/v1/groups",
    status_code=201,
    response_model=GroupChangedOut,
    responses={
        201: {"headers": ETAG_HEADER, "description": "Created, its membership computed"},
        **INVALID,
        **UNKNOWN_USERS,
        **CONFLICT,
    },
)
def create_user_group(app: AppDep, reach: ReachDep, body: GroupIn, response: Response) -> Any:
    """Create a group and compute its membership (not for a frozen one). 409 ``group-exists`` if its id,
    or its name in its scope, is taken; 422 ``invalid-criteria``, ``invalid-scope`` or ``invalid-group``,
    or ``invalid-members-file`` (as a members import) when an include or exclude user is not in the
    user directory."""
    reach.require_group_scope(body.scope)
    try:
        view, result = app.groups.create_group(body.group_id, body.definition())
    except groups.UnknownUsers as error:
        return unknown_users(error)
    response.headers["Location"] = f"/v1/groups/{view.group.group_id}"
    return _changed(view, result, response)


@router.get("/v1/groups", response_model=list[GroupSummaryOut], responses=INVALID)
def list_user_groups(
    app: AppDep,
    reach: ReachDep,
    scope: Annotated[
        str | None,
        Query(
            description="Only this scope's groups (instance, course:<id>, ...).",
            json_schema_extra={"pattern": SCOPE_PATTERN},
        ),
    ] = None,
) -> list[GroupSummaryOut]:
    """Every group by id, without its include and exclude lists (for a token scoped to courses, the
    groups of its courses and organisations)."""
    found = app.groups.list_groups(scope=scope)
    return [GroupSummaryOut.of(group) for group in found if reach.group_scope(str(group.scope))]


@router.get(
    "/v1/groups/{group_id}",
    response_model=GroupOut,
    responses={200: {"headers": ETAG_HEADER}, **INVALID, **NOT_FOUND},
)
def get_user_group(app: AppDep, group_id: str, response: Response) -> GroupOut:
    """One group with its include and exclude lists; the ETag header is what If-Match takes. A read
    writes nothing: a linked group's membership is as of its last refresh."""
    view = app.groups.get_group(group_id)
    response.headers["ETag"] = view.group.etag
    return GroupOut.of_view(view)


@router.put(
    "/v1/groups/{group_id}",
    response_model=GroupChangedOut,
    responses={
        200: {"headers": ETAG_HEADER},
        **INVALID,
        **UNKNOWN_USERS,
        **NOT_FOUND,
        **CONFLICT,
        **REQUIRED_PRECONDITION,
    },
    openapi_extra=if_match_header(required=True),
)
def replace_user_group(
    app: AppDep,
    reach: ReachDep,
    group_id: str,
    body: GroupDefinitionIn,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Replace a group's definition (a missing optional field takes its default); the membership is
    refreshed when the rules changed, unless the group is frozen. Answers the new ETag. A user added to
    the include or exclude list must be in the user directory (422 ``invalid-members-file``)."""
    reach.require_group_scope(body.scope)
    definition = body.definition()
    try:
        view, result = app.groups.update_group(
            group_id,
            expected_version=required_version(if_match, group_id),
            name=definition.name,
            scope=definition.scope,
            description=definition.description,
            enabled=definition.enabled,
            frozen=definition.frozen,
            criteria=definition.criteria,
            include=definition.include,
            exclude=definition.exclude,
        )
    except groups.UnknownUsers as error:
        return unknown_users(error)
    return _changed(view, result, response)


@router.patch(
    "/v1/groups/{group_id}",
    response_model=GroupChangedOut,
    responses={
        200: {"headers": ETAG_HEADER},
        **INVALID,
        **UNKNOWN_USERS,
        **NOT_FOUND,
        **CONFLICT,
        **REQUIRED_PRECONDITION,
    },
    openapi_extra=if_match_header(required=True),
)
def patch_user_group(
    app: AppDep,
    reach: ReachDep,
    group_id: str,
    body: GroupPatchIn,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Change only the fields present (a JSON merge patch; ``application/merge-patch+json`` is taken
    too): ``"criteria": null`` removes the criteria. Answers the new ETag. A user added to the include
    or exclude list must be in the user directory (422 ``invalid-members-file``)."""
    if body.scope is not None:
        reach.require_group_scope(body.scope)
    try:
        view, result = app.groups.update_group(
            group_id, expected_version=required_version(if_match, group_id), **body.changes()
        )
    except groups.UnknownUsers as error:
        return unknown_users(error)
    return _changed(view, result, response)


@router.delete(
    "/v1/groups/{group_id}",
    status_code=204,
    response_class=Response,
    responses={**INVALID, **NOT_FOUND, **REQUIRED_PRECONDITION},
    openapi_extra=if_match_header(required=True),
)
def delete_user_group(app: AppDep, group_id: str, if_match: IfMatch = None) -> Response:
    """Delete a group, its overrides, members and history. A group linked to a team deletes
    the team first; one linked to a cohort or a track follows the delete policy (409
    ``delete-restricted`` under restrict). The ``Courseinfra-Delete-Outcome`` header says what was done:
    ``deleted``, ``detached`` (the legacy group stays) or ``archived`` (both stay, the group disabled)."""
    outcome = app.groups.delete_group(group_id, expected_version=required_version(if_match, group_id))
    return Response(status_code=204, headers={"Courseinfra-Delete-Outcome": outcome})


@router.get(
    "/v1/groups/{group_id}/members",
    response_model=MembersPageOut,
    responses={**INVALID, **NOT_FOUND},
)
def list_group_members(
    app: AppDep,
    group_id: str,
    after: Annotated[str, Query(description="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MembersPageOut:
    """Members by user id, each with when and why it joined."""
    return MembersPageOut.of(app.groups.members(group_id, after=after, limit=limit), limit)


@router.get(
    "/v1/groups/{group_id}/history",
    response_model=HistoryPageOut,
    responses={**INVALID, **NOT_FOUND},
)
def list_group_history(
    app: AppDep,
    group_id: str,
    user_id: Annotated[str | None, Query(description="Only this user's joins and leaves.")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Only ids above this one (paging).")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryPageOut:
    """Joins and leaves in the order they happened, with their time and reason."""
    return HistoryPageOut.of(
        app.groups.history(group_id, user_id=user_id, after_id=after, limit=limit), limit
    )


@router.post(
    "/v1/groups/{group_id}/preview",
    response_model=PreviewOut,
    responses={**INVALID, **NOT_FOUND},
)
def preview_user_group(
    app: AppDep,
    group_id: str,
    body: Annotated[PreviewIn | None, Body()] = None,
    sample: Annotated[int, Query(ge=0, le=1000, description="How many ids of each kind to list.")] = 100,
) -> PreviewOut:
    """Who a refresh would add and remove, with the stored criteria or those of the body; writes
    nothing. For a group linked to a legacy group: what a refresh would pull from it."""
    criteria = body.criteria if body is not None and "criteria" in body.model_fields_set else groups.UNSET
    result = app.groups.preview(group_id, criteria=criteria, sample=sample)
    return PreviewOut.of_preview(result)


@router.get(
    "/v1/groups/{group_id}/explain/{user_id}", response_model=ExplainOut, responses={**INVALID, **NOT_FOUND}
)
def explain_group_membership(app: AppDep, principal: PrincipalDep, group_id: str, user_id: str) -> ExplainOut:
    """Why a user is or is not a member: the stored membership, what an evaluation now decides and its
    reason (excluded, included, criteria, not-matched, unknown-user), and every criterion's outcome with
    the value read of the user beside the value compared (progress 33 against lt 30). For a linked
    group: whether its legacy group has the user (legacy-member, not-in-legacy-group). A value read of
    the user's profile is personal data: ``***`` without the ``pii`` grant."""
    explained = app.groups.explain(group_id, user_id)
    if explained["criteria"] is not None:
        explained["criteria"] = masked_criteria(explained["criteria"], app.registry, pii=principal.pii)
    return ExplainOut(**explained)


@router.post(
    "/v1/groups/refresh",
    response_model=dict[str, RefreshOut],
    responses=INVALID,
)
def refresh_all_groups(app: AppDep, reach: ReachDep) -> dict[str, RefreshOut]:
    """Refresh every enabled, unfrozen group (one transaction each); the results by group id. Not for
    a token scoped to courses (it refreshes its groups one by one)."""
    if reach.principal.scoped:
        raise Forbidden(
            "refreshing every group reaches beyond the token's scopes: refresh its groups one by one"
        )
    return RefreshOut.by_group(app.groups.refresh_all())


@router.post(
    "/v1/groups/{group_id}/refresh",
    response_model=GroupRefreshOut,
    responses={**INVALID, **NOT_FOUND, 409: {"model": ErrorResponse, "description": "The group is frozen"}},
)
def refresh_user_group(app: AppDep, group_id: str) -> GroupRefreshOut:
    """Re-evaluate a group now and apply the difference (even a disabled one); 409 ``group-frozen`` for
    a frozen group. The version, and so the ETag, does not change."""
    group, result = app.groups.refresh_group(group_id)
    return GroupRefreshOut.of(result, group_id=group.group_id)


MEMBERS_CSV_EXAMPLE = "user_id,action\nu1,include\nu2,exclude\nu3\n"


MEMBERS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "CSV with a header row: a user_id column and an optional action column (include, "
        "the default, or exclude).",
        "content": {
            "text/csv": {"schema": {"type": "string"}, "example": MEMBERS_CSV_EXAMPLE},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


TEXT_MEDIA_TYPES = ("text/csv", "text/plain", "")


@router.post(
    "/v1/groups/{group_id}/members/import",
    response_model=MembersImportOut,
    responses={
        200: {"headers": ETAG_HEADER},
        **NOT_FOUND,
        **PRECONDITION,
        422: {"model": ErrorResponse, "description": "Bad rows (in ``details``): nothing imported"},
    },
    openapi_extra={**MEMBERS_BODY, **if_match_header(required=False)},
)
def import_group_members(
    app: AppDep,
    group_id: str,
    request: Request,
    response: Response,
    body: Annotated[bytes, Depends(raw_body)],
    if_match: IfMatch = None,
) -> Any:
    """Add the users of a CSV file to the include (or exclude) list and refresh the membership, all or
    nothing: with any bad row (unknown user, duplicate, bad action), 422 ``invalid-members-file`` lists
    every one in ``details`` (``{line, reason}``) and nothing changes. A group linked to a legacy group
    has no overrides: its include rows are added to the legacy group, its exclude rows removed."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in TEXT_MEDIA_TYPES:
        raise StarletteHTTPException(415, f"the body is CSV text (text/csv), not {media_type}")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidBody(f"the body is not UTF-8: {error}") from None
    try:
        view, result = app.groups.import_members(
            group_id, text, expected_version=expected_version(if_match, group_id)
        )
    except groups.InvalidMembersFile as error:
        return error_json(
            422, error.code, str(error), [{"line": line, "reason": reason} for line, reason in error.rows]
        )
    response.headers["ETag"] = view.group.etag
    return MembersImportOut.of(view, result)
