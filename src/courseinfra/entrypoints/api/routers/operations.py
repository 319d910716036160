"""Counters, Prometheus metrics and the health check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    Request,
    Response,
)
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from courseinfra.bootstrap import App
from courseinfra.domain.access import Forbidden, Permission
from courseinfra.entrypoints.api.deps import (
    AUTH,
    AppDep,
    authenticate_bearer,
    bearer,
    needs,
)
from courseinfra.entrypoints.schemas.operations import HealthOut
from courseinfra.services import events, failed_events

router = APIRouter(tags=["operations"])


HEALTH_PROBE_KEY = "courseinfra:healthz:probe"


@router.get(
    "/v1/counters",
    response_model=dict[str, dict[str, int]],
    dependencies=[needs(Permission.READ)],
    responses=AUTH,
)
def counters(app: AppDep) -> dict[str, dict[str, int]]:
    """Cumulative counters of every job."""
    return events.job_counters(app.uow_factory)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}, **AUTH},
)
def metrics(
    request: Request,
    app: AppDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    """Prometheus metrics, read from the database at each scrape. A bearer token with ``read`` is
    needed unless ``COURSEINFRA_METRICS_PUBLIC`` is set (a scraper on a private network)."""
    if not app.settings.metrics_public:
        principal = authenticate_bearer(app, credentials)
        principal.require(Permission.READ)
        if principal.scoped:
            raise Forbidden(
                "the metrics are the whole instance's: a token scoped to courses does not reach them"
            )
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database or the cache does not answer"}},
)
def healthz(app: AppDep, response: Response) -> HealthOut:
    """Cheap checks that the database and the cache answer; needs no token (for load balancers)."""
    database = _check(lambda: _last_failed_id(app))
    cache = _check(lambda: app.cache.get(HEALTH_PROBE_KEY))
    healthy = database == cache == "ok"
    if not healthy:
        response.status_code = 503
    return HealthOut(status="ok" if healthy else "error", database=database, cache=cache)


def _last_failed_id(app: App) -> int:
    return failed_events.last_failed_id(app.uow_factory)


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as error:
        # The type only: a driver's message may carry a host name or a user.
        return f"error: {type(error).__name__}"
    return "ok"
