"""The user groups page: the groups (paged, by course), one group with its criteria, members and history,
why one learner is or is not a member, a preview of other criteria, and an on-demand refresh.

The same use cases as ``courseinfra groups list|get|members|history|explain|preview|refresh`` and
``/v1/groups``, behind the same permissions (``read`` to look, ``manage-groups`` to preview and refresh,
as the API's POSTs) and scopes: course staff list and open only the groups of their courses. User ids
are shown as the API shows them (ADR 0020: ids are not personal data); the profile values an
explanation reads are, and are masked without the ``pii`` grant (ADR 0026).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, cast

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from courseinfra.domain.access import Permission
from courseinfra.domain.criteria import Scope, criteria_json
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.legacy import link_of
from courseinfra.entrypoints.console.web import (
    AppDep,
    FormDep,
    InvalidForm,
    Page,
    PrincipalDep,
    ReachDep,
    render,
    see_other,
)
from courseinfra.entrypoints.schemas.common import MAX_ID
from courseinfra.entrypoints.schemas.groups import masked_criteria
from courseinfra.services import groups
from courseinfra.services.groups.ports import RefreshResult

PAGE = Page(
    label="User groups",
    path="/groups",
    order=50,
    read=Permission.READ,
    write=Permission.MANAGE_GROUPS,
    scoped=True,
)
router = PAGE.router()

#: Groups, members or history rows on one page.
PAGE_SIZE = 50
#: How many ids of each side a preview lists.
SAMPLE = 100
#: The longest criteria document the preview form takes (the form itself is at most 64 KiB).
CRITERIA_TEXT = 60_000

#: What each reason of an explanation means (``ExplainOut.reason``).
REASONS = {
    "excluded": "in the exclude list, which wins over everything",
    "included": "in the include list",
    "criteria": "the criteria hold",
    "not-matched": "the criteria do not hold",
    "unknown-user": "not in the user directory",
    "legacy-member": "in the linked legacy group",
    "not-in-legacy-group": "not in the linked legacy group",
}

GroupId = Annotated[str, Path(min_length=1, max_length=64)]
UserId = Annotated[str | None, Query(max_length=255, description="The user whose membership to explain.")]


@router.get("/groups", response_class=HTMLResponse)
def group_list(
    request: Request,
    app: AppDep,
    reach: ReachDep,
    course: Annotated[str | None, Query(max_length=255, description="Only this course's groups.")] = None,
    after: Annotated[str, Query(max_length=64, description="Only group ids above this one.")] = "",
) -> Response:
    course = (course or "").strip() or None
    # The course filter is the scope filter of ``groups list --scope course:<id>``.
    scope = None if course is None else str(Scope.parse(f"course:{course}"))
    found = [
        group
        for group in app.groups.list_groups(scope=scope)
        if group.group_id > after and reach.group_scope(str(group.scope))
    ]
    shown = found[:PAGE_SIZE]
    return render(
        request,
        "user_groups/list.html",
        {
            "groups": [(group, link_of(group.criteria)) for group in shown],
            "course": course,
            "after": after,
            "next_after": shown[-1].group_id if len(found) > PAGE_SIZE else None,
        },
        page=PAGE,
    )


@router.get("/groups/{group_id}", response_class=HTMLResponse)
def group_detail(
    request: Request,
    app: AppDep,
    group_id: GroupId,
    members_after: Annotated[str, Query(max_length=255)] = "",
    history_after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    joined: Annotated[int | None, Query(ge=0)] = None,
    left: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    view = app.groups.get_group(group_id)
    members = app.groups.members(group_id, after=members_after, limit=PAGE_SIZE + 1)
    history = app.groups.history(group_id, after_id=history_after, limit=PAGE_SIZE + 1)
    return render(
        request,
        "user_groups/detail.html",
        {
            **group_context(view),
            "members": members[:PAGE_SIZE],
            "members_after": members_after,
            "members_next": members[PAGE_SIZE - 1].user_id if len(members) > PAGE_SIZE else None,
            "history": history[:PAGE_SIZE],
            "history_after": history_after,
            "history_next": history[PAGE_SIZE - 1].id if len(history) > PAGE_SIZE else None,
            "refreshed": None if joined is None or left is None else {"joined": joined, "left": left},
        },
        page=PAGE,
    )


@router.get("/groups/{group_id}/explain", response_class=HTMLResponse)
def explain(
    request: Request, app: AppDep, principal: PrincipalDep, group_id: GroupId, user: UserId = None
) -> Response:
    """Why a user is or is not a member (as ``courseinfra groups explain``): the stored membership, what
    an evaluation decides now and why, and each criterion's value read beside the value compared."""
    view = app.groups.get_group(group_id)
    user = (user or "").strip() or None
    explained = None if user is None else app.groups.explain(group_id, user)
    if explained is not None and explained["criteria"] is not None:
        explained["criteria"] = masked_criteria(explained["criteria"], app.registry, pii=principal.pii)
    return render(
        request,
        "user_groups/explain.html",
        {**group_context(view), "user": user, "explained": explained, "reasons": REASONS},
        page=PAGE,
    )


@router.post("/groups/{group_id}/preview", response_class=HTMLResponse)
def preview(request: Request, app: AppDep, form: FormDep, group_id: GroupId) -> Response:
    """Who would join and leave with the criteria of the form (blank: the stored ones; ``null``: none),
    as ``courseinfra groups preview`` and ``POST /v1/groups/{id}/preview``: nothing is written, so the
    answer is the page itself, not a redirect. A criteria document that cannot be read or is refused is
    shown on the page with the form as it was sent (422)."""
    view = app.groups.get_group(group_id)
    text = str(form.get("criteria", ""))
    try:
        criteria = read_criteria(text)
        result = app.groups.preview(group_id, criteria=criteria, sample=SAMPLE)
    except DomainError as error:
        if error.kind is not ErrorKind.INVALID:
            raise
        return render_preview(request, view, None, text, error=str(error))
    return render_preview(request, view, result, text)


@router.post("/groups/{group_id}/refresh")
def refresh(request: Request, app: AppDep, _form: FormDep, group_id: GroupId) -> Response:
    """Re-evaluate the group now and apply the difference (as ``courseinfra groups refresh ID``); a
    frozen group is refused (409 page)."""
    _, result = app.groups.refresh_group(group_id)
    return see_other(request, f"/groups/{group_id}", joined=result.joined, left=result.left)


def group_context(view: groups.GroupView) -> dict[str, Any]:
    group = view.group
    return {
        "group": group,
        "include": sorted(view.include),
        "exclude": sorted(view.exclude),
        "link": link_of(group.criteria),
        "criteria": criteria_text(view),
    }


def criteria_text(view: groups.GroupView) -> str:
    criteria = view.group.criteria
    return "" if criteria is None else json.dumps(criteria_json(criteria), indent=2)


def read_criteria(text: str) -> Mapping[str, Any] | None:
    """The criteria of the preview form: blank is the stored criteria (:data:`groups.UNSET`), ``null``
    none; anything else a JSON object (the use case validates it)."""
    if len(text) > CRITERIA_TEXT:
        raise InvalidForm(f"criteria: at most {CRITERIA_TEXT} characters")
    if not text.strip():
        return cast(Mapping[str, Any], groups.UNSET)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidForm(f"criteria: not JSON ({error})") from None
    if document is None or isinstance(document, dict):
        return cast(dict[str, Any] | None, document)
    raise InvalidForm("criteria: expected a JSON object (a criteria tree), or null for none")


def render_preview(
    request: Request,
    view: groups.GroupView,
    result: RefreshResult | None,
    text: str,
    *,
    error: str | None = None,
) -> Response:
    return render(
        request,
        "user_groups/preview.html",
        {**group_context(view), "text": text, "result": result, "error": error},
        page=PAGE,
        status_code=422 if error else 200,
    )
