"""The FastAPI application: the routers of every feature, the error answers and the metrics registry.

``create_app()`` connects to nothing: the application is built by the lifespan, at start-up, and closed
at shutdown. ``create_app(app)`` serves an application built by the caller, who closes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import (
    Depends,
    FastAPI,
)
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from courseinfra import __version__
from courseinfra.bootstrap import App, bootstrap
from courseinfra.entrypoints.api.deps import (
    UNREADABLE_BODY,
    app_of,
    refuse_nul_in_json_body,
)
from courseinfra.entrypoints.api.errors import install_error_handlers
from courseinfra.entrypoints.api.limits import TOO_LARGE, RequestLimits
from courseinfra.entrypoints.api.metrics import CountersCollector
from courseinfra.entrypoints.api.routers import ROUTERS
from courseinfra.entrypoints.console import create_console
from courseinfra.entrypoints.schemas.common import ErrorResponse
from courseinfra.settings import load_settings


def create_app(app: App | None = None) -> FastAPI:
    """The FastAPI application serving ``app``, or the one bootstrapped from the settings at start-up."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        if app is not None:
            yield
            return
        owned = await run_in_threadpool(lambda: bootstrap(load_settings()))
        api.state.courseinfra = owned
        try:
            yield
        finally:
            api.state.courseinfra = None
            owned.close()

    api = FastAPI(
        title="courseinfra",
        version=__version__,
        summary="Course infrastructure jobs: hierarchy store, relation cache, event ingest.",
        lifespan=lifespan,
        responses={500: {"model": ErrorResponse, "description": "Internal error"}},
        dependencies=[Depends(refuse_nul_in_json_body)],
    )
    api.state.courseinfra = app
    registry = CollectorRegistry()
    registry.register(CountersCollector(lambda: app_of(api)))
    api.state.metrics_registry = registry
    install_error_handlers(api)
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.body_field is not None:
                route.responses = {**UNREADABLE_BODY, **route.responses}
            if isinstance(route, APIRoute) and (route.methods or set()) & {"POST", "PUT", "PATCH"}:
                route.responses = {**TOO_LARGE, **route.responses}
        api.include_router(router)
    # The operator console: pages behind the same tokens and roles, outside the OpenAPI document.
    api.mount("/console", create_console(lambda: app_of(api)))
    api.add_middleware(RequestLimits, max_body_bytes=lambda: app_of(api).settings.max_body_bytes)
    return api
