"""The operator console: server-rendered pages at ``/console``, behind the API's tokens and roles.

``create_console`` (``console/app.py``) is mounted by the API's ``create_app`` and so served by
``courseinfra serve``. Decisions: ADR 0024.

Adding a page
=============

1. A module ``console/pages/<feature>.py``; the console finds every module of that package (no list to
   edit). It declares, at module level::

       PAGE = Page(label="Jobs", path="/jobs", order=10, read=Permission.READ, write=Permission.OPERATE)
       router = PAGE.router()

   ``path`` is the navigation link, below ``/console``. ``order`` places it in the navigation: jobs 10,
   failed events 20, courses 30, batches 40, groups 50, links 60. ``read`` (what its GETs need, and what
   shows the link) and ``write`` (what its POSTs need) are the permissions of the matching API router's
   ``guard``; ``scoped=True`` when a ``course_staff`` principal may open it, as for the API's scoped
   routers (the guard then checks a ``course_id``, ``batch_id`` or ``group_id`` path parameter; the page
   filters what it lists with :data:`~.web.ReachDep`). ``PAGE.router()`` puts every route behind that
   guard: a principal beyond it gets a 403 page, and nobody reaches a page without logging in (a GET is
   sent to ``/console/login``). ``landing=True`` makes the page where a login without a destination
   goes, for a role that may open it (the jobs page). Pages do not import each other (import-linter).

2. Routes are plain FastAPI routes on ``router``, sync ``def`` (they run in a thread), answering HTML::

       from courseinfra.entrypoints.console.web import (
           AppDep, FormDep, Page, PrincipalDep, ReachDep, form_text, render, see_other,
       )

       @router.get("/jobs", response_class=HTMLResponse)
       def jobs(request: Request, app: AppDep, principal: PrincipalDep) -> Response:
           counters = events.job_counters(app.uow_factory)       # the feature's use case, never SQL
           return render(request, "jobs/index.html", {"counters": counters}, page=PAGE)

   ``AppDep`` is the :class:`~courseinfra.bootstrap.App`; ``PrincipalDep`` the logged-in
   :class:`~courseinfra.domain.access.Principal` (role, ``pii``, scopes); ``ReachDep`` what it reaches.
   Read and write through the same use cases as the CLI and the API (``services/<feature>``), and mask
   personal data as the API does for a principal without ``pii``. A domain error raised by a use case
   becomes a page with its message and status (404, 409, 422...); bad query parameters a 422 page with
   the message; nothing shows a traceback.

3. Templates in ``console/templates/<feature>/``, extending the layout::

       {% extends "base.html" %}
       {% block title %}Jobs{% endblock %}
       {% block content %}<h1>Jobs</h1>...{% endblock %}

   Every template has ``principal``, ``nav``, ``page``, ``url(path, **query)`` (a console address:
   ``url('/jobs', job='x')``), ``can(permission)`` and ``csrf_field()``. Values are escaped
   (autoescape); an undefined name fails the render (StrictUndefined), so pass what the template reads.
   Show an action only to a role that may do it: ``{% if can(page.write) %}<form ...>{% endif %}``
   (or ``can('manage-groups')``); the server refuses it anyway. Keyboard use: real links and buttons,
   a ``<label for>`` on every input, no ``tabindex`` above 0. Static files (no CDN, no build step) go
   in ``console/static/`` and are linked as ``url('/static/<file>')``.

4. A state-changing action is a POST form with the CSRF field, answered by a redirect (303) to a page::

       <form method="post" action="{{ url('/jobs/rebuild') }}">
         {{ csrf_field() }}
         <label for="root">Course</label> <input id="root" name="root">
         <button type="submit">Rebuild</button>
       </form>

       @router.post("/jobs/rebuild")
       def rebuild(request: Request, app: AppDep, form: FormDep) -> Response:
           root = form_text(form, "root")                   # 422 page when too long; None when blank
           ...                                               # the use case
           return see_other(request, "/jobs", rebuilt=root) # numbers and names only, no free text

   ``FormDep`` reads the form (``application/x-www-form-urlencoded``) and refuses it (403) unless its
   ``csrf_token`` is the session's. The route's changes are written in the trail as the principal's,
   entry point ``console``.

Tests: ``tests/support/console.py`` (a logged-in client in process; a real ``courseinfra serve`` with a
headless chromium, screenshots kept in the artifacts folder).
"""

from courseinfra.entrypoints.console.app import create_console
from courseinfra.entrypoints.console.web import (
    AppDep,
    FormDep,
    Page,
    PrincipalDep,
    ReachDep,
    can,
    form_text,
    render,
    see_other,
    url,
)

__all__ = [
    "AppDep",
    "FormDep",
    "Page",
    "PrincipalDep",
    "ReachDep",
    "can",
    "create_console",
    "form_text",
    "render",
    "see_other",
    "url",
]
