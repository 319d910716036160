"""The ``openedx`` commands: read Open edX's event bus into the linked user groups (ADR 0022)."""

from __future__ import annotations

from typing import Annotated

import typer

from courseinfra.entrypoints.cli.common import Failure, application, emit, err
from courseinfra.entrypoints.openedx_consumer import consume, open_bus
from courseinfra.services.openedx.ports import BusUnavailable

app = typer.Typer(
    no_args_is_help=True, help="Open edX's event bus: consume its events into linked user groups."
)


@app.command("consume")
def openedx_consume(
    once: Annotated[
        bool, typer.Option("--once", help="Stop when no entry is left, instead of waiting for more.")
    ] = False,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic", help="A topic to read (repeat for several); default COURSEINFRA_OPENEDX_TOPICS."
        ),
    ] = None,
    consumer: Annotated[
        str | None, typer.Option("--consumer", help="This consumer's name in the group; default host-pid.")
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=10_000, help="Entries read at a time.")] = 100,
) -> None:
    """Read Open edX's event streams (<prefix>-<topic>) in the consumer group, apply each event to the
    user groups linked to the legacy groups it touches, keep those that cannot be applied in failed
    events, and acknowledge each once done; print what was done (JSON). Stops on Ctrl-C."""
    with application() as app:
        streams = [app.settings.openedx_stream(name) for name in (topic or app.settings.openedx_topics)]
        bus = open_bus(app.settings, consumer)
        try:
            report = consume(app, bus, streams, once=once, count=count)
        except KeyboardInterrupt:
            err.print("stopped", highlight=False)
            raise typer.Exit(130) from None
        except BusUnavailable as error:
            raise Failure(str(error)) from None
        finally:
            bus.close()
    emit(
        {
            "streams": streams,
            "entries": report.entries,
            "applied": report.applied,
            "not_applied": report.not_applied,
        }
    )
