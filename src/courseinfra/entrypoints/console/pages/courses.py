"""The courses page: the published courses (paged), find one by id, and one course's relation cache as
a tree (its collections nested, their leaves, each leaf's ancestors), as the relation cache job stored it.

The same use cases as ``courseinfra cache show`` and ``/v1/cache-owners/{root}`` (``owned_entries``)
and the content store's summaries, and the same permission as the API's cache and content routers
(``read``; a principal scoped to courses reaches neither, nor this page).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from courseinfra.domain.access import Permission
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.entrypoints.console.web import AppDep, Page, render, see_other
from courseinfra.services import cache, content

PAGE = Page(label="Courses", path="/courses", order=30, read=Permission.READ, write=Permission.OPERATE)
router = PAGE.router()

#: Courses on one page of the list.
PAGE_SIZE = 50
#: A course identifier: as long as the store keeps them.
IDENTIFIER = 255

CourseId = Annotated[str, Path(min_length=1, max_length=IDENTIFIER)]


class CourseUnknown(DomainError):
    """Neither the content store nor the relation cache knows the course."""

    code = "course-not-found"
    kind = ErrorKind.NOT_FOUND


@router.get("/courses", response_class=HTMLResponse)
def course_list(
    request: Request,
    app: AppDep,
    course: Annotated[str | None, Query(max_length=IDENTIFIER, description="Go to this course.")] = None,
    after: Annotated[str, Query(max_length=IDENTIFIER)] = "",
) -> Response:
    """The published courses in identifier order, a page at a time; the find form sends ``course``,
    answered with the course's page."""
    if course and course.strip():
        return see_other(request, f"/courses/{quote(course.strip(), safe='')}")
    found = content.published_courses(app.uow_factory, after=after, limit=PAGE_SIZE + 1)
    shown = found[:PAGE_SIZE]
    return render(
        request,
        "courses/list.html",
        {
            "courses": shown,
            "after": after,
            "next_after": shown[-1].identifier if len(found) > PAGE_SIZE else None,
        },
        page=PAGE,
    )


@router.get("/courses/{course_id}", response_class=HTMLResponse)
def course_detail(request: Request, app: AppDep, course_id: CourseId) -> Response:
    """What the content store holds of the course (version, publication) and its relation cache as a
    tree; a 404 page when neither knows it."""
    summary = content.course_summary(course_id, app.uow_factory)
    tree = cache.course_cache_tree(course_id, app.cache, app.settings.cache_layout)
    if summary is None and tree.key_count == 0:
        raise CourseUnknown(f"no course {course_id}: the content store and the relation cache do not know it")
    return render(
        request,
        "courses/detail.html",
        {"course_id": course_id, "summary": summary, "tree": tree, "layout": app.settings.cache_layout.value},
        page=PAGE,
    )
