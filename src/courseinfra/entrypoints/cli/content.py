"""The ``content`` commands: store, publish and read hierarchies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from courseinfra.domain.cache_layout import entries_by_kind
from courseinfra.domain.job_requests import Outcome
from courseinfra.entrypoints.cli.common import Failure, application, emit, read_json_file
from courseinfra.services import content, failed_events

app = typer.Typer(no_args_is_help=True, help="The hierarchy store: store and publish content.")


@app.command("put")
def content_put(path: Annotated[Path, typer.Argument(help="A hierarchy JSON file, or - for stdin.")]) -> None:
    """Store a hierarchy (without publishing it)."""
    with application() as app:
        stored = content.put_hierarchy(
            read_json_file(path), app.uow_factory(), max_depth=app.settings.max_hierarchy_depth
        )
    emit({"identifier": stored.identifier, "version": stored.version})


@app.command("publish")
def content_publish(
    path: Annotated[
        Path | None, typer.Argument(help="A hierarchy JSON file to store first, or - for stdin.")
    ] = None,
    identifier: Annotated[
        str | None, typer.Option("--id", help="Publish the stored hierarchy of this root.")
    ] = None,
) -> None:
    """Store (from PATH) and publish a hierarchy; the relation cache is updated before this returns."""
    if (path is None) == (identifier is None):
        raise Failure("give either a PATH or --id", exit_code=2)
    with application() as app:
        if path is not None:
            identifier = content.put_hierarchy(
                read_json_file(path), app.uow_factory(), max_depth=app.settings.max_hierarchy_depth
            ).identifier
        assert identifier is not None
        before = failed_events.last_failed_id(app.uow_factory)
        event = content.publish(identifier, app.uow_factory())
        keys = app.cache.owned_keys(identifier)
        since = failed_events.list_failed_events(
            app.uow_factory, outcomes=tuple(Outcome), after_id=before, limit=1000
        )
    mine = [p for p in since if p.source.startswith("outbox:")]
    emit(
        {
            "identifier": identifier,
            "version": event.version,
            "event": event.job_request(),
            "cache": entries_by_kind(dict.fromkeys(keys, None)),  # type: ignore[arg-type]
            "cache_keys": len(keys),
            "failed": [{"id": p.id, "code": p.code, "reason": p.reason} for p in mine],
        }
    )


@app.command("get")
def content_get(identifier: str) -> None:
    """Print a stored hierarchy with its version."""
    with application() as app:
        stored = content.get_hierarchy(identifier, app.uow_factory)
    emit(
        {
            "identifier": stored.identifier,
            "version": stored.version,
            "published_at": stored.published_at.isoformat() if stored.published_at else None,
            "hierarchy": stored.hierarchy,
        }
    )
