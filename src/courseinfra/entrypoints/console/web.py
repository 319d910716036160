"""What every console page uses: its declaration (:class:`Page`), the logged-in principal, the
application, permission checks, rendering, and the CSRF-checked form of a POST.

The console authenticates as the API does (``services.access.authenticate``) with the token kept in
an HttpOnly cookie, and checks the same roles, permissions and scopes (``guard`` mirrors the API's).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl, urlencode

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from courseinfra.bootstrap import App
from courseinfra.domain.access import Forbidden, Permission, Principal, Unauthenticated
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.trail import Actor
from courseinfra.entrypoints.api.deps import require_route
from courseinfra.services import access, trail
from courseinfra.services.access.scopes import Reach

#: The cookie holding the logged-in token (HttpOnly, SameSite=Strict, Secure over https).
SESSION_COOKIE = "courseinfra_console"
#: The cookie holding the login form's CSRF nonce (there is no session to derive one from yet).
LOGIN_COOKIE = "courseinfra_console_login"
#: The form field every state-changing POST carries (``{{ csrf_field() }}`` in a template).
CSRF_FIELD = "csrf_token"
#: The longest form body the console reads (its forms are a few fields).
MAX_FORM_BYTES = 64 * 1024

HERE = Path(__file__).parent
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is escaped; ``|safe`` is never needed for data
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the page in the tests, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
)


@dataclass(frozen=True, slots=True)
class Page:
    """A console page: its entry in the navigation and the permissions of its routes.

    ``read`` is what its GETs need and what shows it in the navigation; ``write`` what its POSTs need;
    ``scoped``: whether a principal limited to some courses (``course_staff``) may open it (its routes
    then check the ``course_id``, ``batch_id`` or ``group_id`` path parameters, as the API's guard does,
    and filter what they list). ``order`` places it in the navigation (jobs 10, failed events 20,
    courses 30, batches 40, groups 50, links 60). ``landing``: where a login without a destination goes
    when the role may open the page (the jobs page); the home page's list of pages otherwise."""

    label: str
    path: str
    order: int
    read: Permission
    write: Permission
    scoped: bool = False
    landing: bool = False

    def visible_to(self, principal: Principal) -> bool:
        return principal.allows(self.read) and (self.scoped or not principal.scoped)

    def router(self) -> APIRouter:
        """The page's router: every route behind :func:`guard` of the page's permissions."""
        return APIRouter(dependencies=[guard(read=self.read, write=self.write, scoped=self.scoped)])


class LoginRequired(DomainError):
    """No logged-in principal (no session cookie, or a token since revoked or expired): a GET is sent
    to the login page, anything else answered 401."""

    code = "login-required"
    kind = ErrorKind.UNAUTHENTICATED


class CsrfRefused(DomainError):
    code = "csrf-refused"
    kind = ErrorKind.FORBIDDEN


def get_app(request: Request) -> App:
    """The application the console serves (the API's)."""
    return cast(Callable[[], App], request.app.state.courseinfra_app)()


AppDep = Annotated[App, Depends(get_app)]


def csrf_of(secret: str) -> str:
    """The CSRF token of a session: derived from its token's secret, so it needs no server state and
    changes with the login. A page that leaks it does not leak the secret (HMAC is one-way)."""
    return hmac.new(secret.encode("utf-8"), b"courseinfra console csrf", hashlib.sha256).hexdigest()


async def get_principal(request: Request) -> Principal:
    """The logged-in principal, authenticated from the session cookie on every request (a revoked token
    is refused at once, as by the API); :class:`LoginRequired` without one. Sets the trail's actor
    (entry point ``console``) in the request's context, which the route's thread inherits."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise LoginRequired("log in with an API token")
    app = get_app(request)
    try:
        principal = await run_in_threadpool(access.authenticate, secret, app.uow_factory, jwt=app.jwt)
    except (Unauthenticated, Forbidden) as error:
        raise LoginRequired(f"log in again: {error}") from None
    request.state.principal = principal
    request.state.csrf = csrf_of(secret)
    origin = request.client.host if request.client else None
    trail.acting_as(Actor(principal.subject, principal.role.value, "console", origin))
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_reach(request: Request, principal: PrincipalDep) -> Reach:
    return Reach(principal, get_app(request).uow_factory)


ReachDep = Annotated[Reach, Depends(get_reach)]


def guard(*, read: Permission, write: Permission, scoped: bool = False) -> Any:
    """A router's dependency, as the API's ``guard``: a GET needs ``read``, a POST ``write`` (403
    beyond the role); a principal scoped to courses reaches only ``scoped`` pages, and there only the
    courses of its scopes (``course_id``, ``batch_id``, ``group_id`` path parameters)."""

    def check(request: Request, reach: ReachDep) -> Principal:
        return require_route(request, reach, read=read, write=write, scoped=scoped)

    return Depends(check)


async def checked_form(request: Request, _principal: PrincipalDep) -> FormData:
    """The POST's form (``application/x-www-form-urlencoded``, as an HTML form sends it), once its CSRF
    field is the session's; :class:`CsrfRefused` (403) otherwise. Needs a logged-in principal."""
    form = await read_form(request)
    if not hmac.compare_digest(str(form.get(CSRF_FIELD, "")), request.state.csrf):
        raise CsrfRefused("the form's CSRF token is missing or not this session's: reload the page")
    return form


async def read_form(request: Request) -> FormData:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise CsrfRefused("the form is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CsrfRefused("the form is not UTF-8") from None
    fields: list[tuple[str, str | UploadFile]] = list(parse_qsl(text, keep_blank_values=True))
    return FormData(fields)


FormDep = Annotated[FormData, Depends(checked_form)]


class InvalidForm(DomainError):
    code = "invalid-form"
    kind = ErrorKind.INVALID


def form_text(form: FormData, name: str, *, max_length: int = 255) -> str | None:
    """A text field of a form, stripped; None when absent or blank (a filter's "any");
    :class:`InvalidForm` (422, shown on the page) when longer than ``max_length``."""
    value = str(form.get(name, "")).strip()
    if len(value) > max_length:
        raise InvalidForm(f"{name}: at most {max_length} characters")
    return value or None


def can(request: Request, permission: Permission | str) -> bool:
    """Whether the logged-in principal's role grants ``permission`` (what a page shows or hides)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal is not None and principal.allows(Permission(permission))


def url(request: Request, path: str, **query: Any) -> str:
    """The address of a console path (``/failed-events``) under the console's mount, with ``query``
    (None values left out)."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    params = {name: value for name, value in query.items() if value is not None and value != ""}
    return root + path + (f"?{urlencode(params)}" if params else "")


def see_other(request: Request, path: str, **query: Any) -> RedirectResponse:
    """303 to a console path: the answer of a POST that worked (post, redirect, get)."""
    return RedirectResponse(url(request, path, **query), status_code=303)


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    page: Page | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """``template`` rendered with ``context`` and what every page has: ``principal`` (None on the login
    page), ``nav`` (the pages the principal may open), ``page`` (the page rendering, marked current in
    the navigation; its ``page.write`` for ``can``), ``can(permission)``, ``url(path, **query)``,
    ``csrf_field()`` and ``csrf_token``."""
    principal: Principal | None = getattr(request.state, "principal", None)
    csrf = getattr(request.state, "csrf", "")
    pages: list[Page] = request.app.state.console_pages
    nav = [page for page in pages if principal is not None and page.visible_to(principal)]

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf)

    return templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "nav": nav,
            "page": page,
            "can": lambda permission: can(request, permission),
            "url": lambda path, **query: url(request, path, **query),
            "csrf_field": csrf_field,
            "csrf_token": csrf,
            **(context or {}),
        },
        status_code=status_code,
    )


def new_nonce() -> str:
    return secrets.token_urlsafe(32)
