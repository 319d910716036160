"""The ``serve`` command: serve the REST API."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from courseinfra.entrypoints.cli.common import Failure, application
from courseinfra.services import access

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[
        str, typer.Option(help="The address to listen on; 127.0.0.1: this machine only.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json, Prometheus metrics at /metrics). Every route but
    /healthz and the OpenAPI document needs a bearer token (``courseinfra tokens create``). On an
    address other machines reach, it refuses to start while no valid token exists and no JWT issuer
    is set."""
    import uvicorn

    from courseinfra.entrypoints.api import create_app

    if not is_loopback(host):
        with application() as app:
            if app.jwt is None and not access.any_token(app.uow_factory):
                raise Failure(
                    f"refusing to serve on {host}: no API token exists and no JWT issuer is set, so no "
                    "client could be let in; create one with `courseinfra tokens create --name NAME --role ROLE`"
                )
    uvicorn.run(create_app(), host=host, port=port)
