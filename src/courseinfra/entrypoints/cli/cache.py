"""The ``cache`` commands: read the relation cache and rebuild it from the hierarchy store."""

from __future__ import annotations

from typing import Annotated

import typer

from courseinfra.domain.cache_layout import to_json_value
from courseinfra.entrypoints.cli.common import Failure, application, emit, print_report, progress_bar
from courseinfra.services.cache import owned_entries, published_roots, rebuild_requests
from courseinfra.services.events.ingest import ingest as run_ingest

app = typer.Typer(no_args_is_help=True, help="Read the relation cache.")


@app.command("get")
def cache_get(key: str) -> None:
    """The value of KEY as JSON: a sorted array for a set, the ordered array for a list, null if absent."""
    with application() as app:
        emit(to_json_value(app.cache.get(key)))


@app.command("rebuild")
def cache_rebuild(
    roots: Annotated[list[str] | None, typer.Argument(help="Roots to rebuild.")] = None,
    rebuild_all: Annotated[bool, typer.Option("--all", help="Every published root in the store.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's counters as JSON.")] = False,
) -> None:
    """Rebuild the relation cache from the hierarchy store (after a cache was lost or flushed)."""
    if not roots and not rebuild_all:
        raise Failure("give roots or --all", exit_code=2)
    with application() as app, progress_bar(not as_json) as progress:
        selected = list(published_roots(app.uow_factory)) if rebuild_all else list(roots or [])
        task = progress.add_task("rebuild", total=len(selected))
        report = run_ingest(
            rebuild_requests(selected),
            "rebuild",
            app.router,
            app.uow_factory,
            chunk_size=app.settings.ingest_chunk_size,
            on_progress=lambda n: progress.advance(task, n),
        )
    print_report(report, as_json)


@app.command("show")
def cache_show(root: str) -> None:
    """Every key the relation cache holds for ROOT, with its value."""
    with application() as app:
        entries = owned_entries(root, app.cache)
    emit({key: to_json_value(value) for key, value in entries.items()})
