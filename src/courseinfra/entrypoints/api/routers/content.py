"""The hierarchy store: store, read and publish a course."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Body,
)

from courseinfra.domain.access import Permission
from courseinfra.entrypoints.api.deps import (
    AUTH,
    INVALID,
    NOT_FOUND,
    AppDep,
    guard,
)
from courseinfra.entrypoints.schemas.common import ErrorResponse
from courseinfra.entrypoints.schemas.content import HierarchyOut, PublishOut, StoredVersionOut
from courseinfra.services import content

router = APIRouter(
    tags=["content"],
    dependencies=[guard(read=Permission.READ, write=Permission.WRITE_CONTENT)],
    responses=AUTH,
)


HIERARCHY_EXAMPLE = {
    "identifier": "do_1",
    "mimeType": "application/vnd.ekstep.content-collection",
    "contentType": "Course",
    "children": [{"identifier": "do_2", "mimeType": "application/pdf"}],
}


@router.put(
    "/v1/content/{identifier}/hierarchy",
    response_model=StoredVersionOut,
    responses={**INVALID, 409: {"model": ErrorResponse, "description": "The path names another root"}},
)
def put_hierarchy(
    app: AppDep,
    identifier: str,
    hierarchy: Annotated[dict[str, Any], Body(examples=[HIERARCHY_EXAMPLE])],
) -> StoredVersionOut:
    """Store a hierarchy as the latest version of its root (without publishing it)."""
    stored = content.put_hierarchy(
        hierarchy, app.uow_factory(), identifier=identifier, max_depth=app.settings.max_hierarchy_depth
    )
    return StoredVersionOut(identifier=stored.identifier, version=stored.version)


@router.get(
    "/v1/content/{identifier}/hierarchy",
    response_model=HierarchyOut,
    responses={**INVALID, **NOT_FOUND},
)
def get_hierarchy(app: AppDep, identifier: str) -> HierarchyOut:
    """The stored hierarchy of a root, with its version and when it was last published."""
    stored = content.get_hierarchy(identifier, app.uow_factory)
    return HierarchyOut(
        identifier=stored.identifier,
        version=stored.version,
        published_at=stored.published_at,
        hierarchy=dict(stored.hierarchy),
    )


@router.post(
    "/v1/content/{identifier}/publish",
    response_model=PublishOut,
    responses={**INVALID, **NOT_FOUND},
)
def publish(app: AppDep, identifier: str) -> PublishOut:
    """Publish the stored hierarchy; its relation cache is updated before this returns."""
    event = content.publish(identifier, app.uow_factory())
    return PublishOut(
        identifier=identifier,
        version=event.version,
        event=event.job_request(),
        cache_keys=len(app.cache.owned_keys(identifier)),
    )
