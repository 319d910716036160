"""The console application, mounted at ``/console`` by the API's ``create_app``: login, logout, the
home page, the static files, every page module of ``console.pages``, and errors as pages."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from courseinfra.bootstrap import App
from courseinfra.domain.access import Forbidden, Unauthenticated
from courseinfra.domain.errors import DomainError
from courseinfra.entrypoints.api.errors import status_of
from courseinfra.entrypoints.console import pages as pages_package
from courseinfra.entrypoints.console.web import (
    CSRF_FIELD,
    HERE,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormDep,
    LoginRequired,
    Page,
    PrincipalDep,
    get_app,
    new_nonce,
    read_form,
    render,
    see_other,
    url,
)
from courseinfra.services import access

#: Sent with every console answer: no framing, no inline script or style, forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def discover_pages() -> list[tuple[Page, object]]:
    """Every module of ``console.pages`` with its ``PAGE`` and ``router``, in navigation order."""
    found = []
    for info in pkgutil.iter_modules(pages_package.__path__):
        module = importlib.import_module(f"{pages_package.__name__}.{info.name}")
        found.append((module.PAGE, module.router))
    return sorted(found, key=lambda pair: (pair[0].order, pair[0].label))


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path only (never another site)."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


def create_console(application: Callable[[], App]) -> FastAPI:
    """The console, serving the :class:`App` that ``application()`` returns at each request."""
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="courseinfra console")
    console.state.courseinfra_app = application
    found = discover_pages()
    console.state.console_pages = [page for page, _ in found]
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @console.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Cache-Control"] = "no-store"  # pages hold what the role may see
        return response

    @console.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
        return login_form(request, next)

    @console.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        target = safe_next(str(form.get("next", "")))
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or form.get(CSRF_FIELD) != nonce:
            return login_form(request, target, "The login form expired: try again.", status_code=403)
        secret = str(form.get("token", "")).strip()
        if not secret:
            return login_form(request, target, "Enter an API token.", status_code=422)
        app = get_app(request)
        try:
            principal = await run_in_threadpool(access.authenticate, secret, app.uow_factory, jwt=app.jwt)
        except (Unauthenticated, Forbidden) as error:
            return login_form(request, target, str(error), status_code=401)
        if target == safe_next(None):  # no destination: the landing page, if the role may open it
            landing = [
                page for page in console.state.console_pages if page.landing and page.visible_to(principal)
            ]
            target = url(request, landing[0].path) if landing else target
        response = RedirectResponse(target, status_code=303)
        set_console_cookie(response, request, SESSION_COOKIE, secret)
        response.delete_cookie(LOGIN_COOKIE, path=url(request, "/") or "/")
        return response

    @console.post("/logout")
    def logout(request: Request, _form: FormDep) -> Response:
        response = see_other(request, "/login")
        response.delete_cookie(SESSION_COOKIE, path=url(request, "/") or "/")
        return response

    @console.get("/", response_class=HTMLResponse)
    def home(request: Request, _principal: PrincipalDep) -> Response:
        return render(request, "home.html")

    for _, router in found:
        console.include_router(router)  # type: ignore[arg-type]
    install_error_pages(console)
    return console


def login_form(
    request: Request, target: str | None, message: str | None = None, *, status_code: int = 200
) -> Response:
    """The login page with a fresh CSRF nonce (in its form and in a cookie)."""
    nonce = new_nonce()
    response = render(
        request,
        "login.html",
        {"next": safe_next(target), "nonce": nonce, "message": message},
        status_code=status_code,
    )
    set_console_cookie(response, request, LOGIN_COOKIE, nonce)
    return response


def set_console_cookie(response: Response, request: Request, name: str, value: str) -> None:
    """A cookie of the console's: out of scripts' reach (HttpOnly), never sent by another site's
    request (SameSite=Strict), only over https when the console is served so, and for its paths only."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=url(request, "/") or "/",
    )


def error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    return render(request, "error.html", {"title": title, "message": message}, status_code=status_code)


TITLES = {
    400: "Bad request",
    401: "Not logged in",
    403: "Not allowed",
    404: "Not found",
    422: "Invalid input",
}


def install_error_pages(console: FastAPI) -> None:
    """Errors as pages within the layout, with their message: never a traceback."""

    @console.exception_handler(LoginRequired)
    async def login_required(request: Request, error: LoginRequired) -> Response:
        if request.method in {"GET", "HEAD"}:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response: Response = see_other(request, "/login", next=target)
        else:
            response = error_page(request, 401, TITLES[401], str(error))
        response.delete_cookie(SESSION_COOKIE, path=url(request, "/") or "/")
        return response

    @console.exception_handler(DomainError)
    async def domain_error(request: Request, error: DomainError) -> Response:
        status = status_of(error)
        return error_page(request, status, TITLES.get(status, "Error"), str(error))

    @console.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        message = "; ".join(
            f"{' '.join(str(part) for part in problem.get('loc', ())[1:]) or 'input'}: {problem.get('msg', '')}"
            for problem in error.errors()
        )
        return error_page(request, 422, TITLES[422], message or "invalid input")

    @console.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return error_page(
            request, error.status_code, TITLES.get(error.status_code, "Error"), str(error.detail)
        )

    @console.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> Response:
        return error_page(request, 500, "Internal error", f"internal error ({type(error).__name__})")
