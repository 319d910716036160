"""The ``serve`` command: serve the REST API."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json, Prometheus metrics at /metrics)."""
    import uvicorn

    from courseinfra.entrypoints.api import create_app

    uvicorn.run(create_app(), host=host, port=port)
