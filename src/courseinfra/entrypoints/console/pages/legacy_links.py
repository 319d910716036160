"""The legacy links page: every user group linked to a legacy group (cohort, team, enrollment track)
with its authority, the differences between both sides and the open drift (``courseinfra sync status``),
the sync failures kept, and reconciling one link, or trying it first (``courseinfra sync reconcile
--link ID [--dry-run]``).

The same use cases and permissions as ``/v1/sync``: reading needs ``read`` (not for a principal scoped
to courses, as the API's sync router); reconciling is an operator's call (``operate``, as
``POST /v1/sync/reconcile``), shown only to the roles that may make it.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from courseinfra.domain.access import Permission
from courseinfra.domain.legacy import LegacyLink, link_of
from courseinfra.entrypoints.console.web import AppDep, FormDep, Page, render, see_other
from courseinfra.services import sync

PAGE = Page(label="Legacy links", path="/links", order=60, read=Permission.READ, write=Permission.OPERATE)
router = PAGE.router()

GroupId = Annotated[str, Path(min_length=1, max_length=64)]
#: What a reconciliation did, as its redirect names it.
ACTIONS = "^(pull|push|skipped|failed)$"


@router.get("/links", response_class=HTMLResponse)
def links(
    request: Request,
    app: AppDep,
    reconciled: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(pattern=ACTIONS)] = None,
    added: Annotated[int | None, Query(ge=0)] = None,
    removed: Annotated[int | None, Query(ge=0)] = None,
    not_fixed: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Every link, its two sides' difference and open drift, and the failures kept; after a
    reconciliation, what it did."""
    linked: list[tuple[str, str, LegacyLink, int]] = [
        (group.group_id, group.name, link, group.member_count)
        for group in app.groups.list_groups()
        if (link := link_of(group.criteria)) is not None
    ]
    status = sync.sync_status(app.uow_factory)
    failures_by_group = Counter(failure.group_id for failure in status.failures)
    drift_by_group = Counter(drift.group_id for drift in status.drift)
    return render(
        request,
        "legacy_links/list.html",
        {
            "links": linked,
            "status": status,
            "differences": {difference.group_id: difference for difference in status.differing},
            "failures_by_group": failures_by_group,
            "drift_by_group": drift_by_group,
            "done": None
            if reconciled is None or action is None
            else {
                "group_id": reconciled,
                "action": action,
                "added": added or 0,
                "removed": removed or 0,
                "not_fixed": not_fixed or 0,
            },
        },
        page=PAGE,
    )


@router.post("/links/{group_id}/reconcile", response_class=HTMLResponse)
def reconcile(request: Request, app: AppDep, form: FormDep, group_id: GroupId) -> Response:
    """Reconcile one link by its authority (``legacy`` and ``both`` pull, ``user_group`` pushes), as
    ``courseinfra sync reconcile --link ID``; with ``dry_run``, report the difference and what would be
    done, writing nothing (the answer is then the page itself). A group that is not linked is a 409
    page, a legacy failure a 502 page with the legacy error (and kept in the failures)."""
    dry_run = str(form.get("dry_run", "")) == "true"
    [result] = app.groups.reconcile(group_id, dry_run=dry_run)
    if dry_run:
        return render(request, "legacy_links/dry_run.html", {"result": result}, page=PAGE)
    return see_other(
        request,
        "/links",
        reconciled=group_id,
        action=result.action,
        added=result.added,
        removed=result.removed,
        not_fixed=len(result.not_fixed),
    )
