"""The runner of the Open edX intake (ADR 0022): read Open edX's event bus in a consumer group, pass
each entry through ``ingest`` (applied, skipped or kept in failed events), then acknowledge it.

An entry is acknowledged only after ingest has finished with it, so a consumer stopped at any moment
gets its unacknowledged entries again (the group's pending list) and another consumer can claim them;
applying twice is a no-op (event ids applied are recorded; pulls are state-based).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from courseinfra.adapters.openedx_bus.envelopes import entry_line
from courseinfra.adapters.openedx_bus.streams import RedisOpenedxBus, SqliteOpenedxBus
from courseinfra.bootstrap import App
from courseinfra.services.events.ingest import IngestReport, ingest
from courseinfra.services.events.jobs import SUCCESS
from courseinfra.services.openedx.ports import OpenedxBus
from courseinfra.settings import Settings, SettingsError

#: Entries pending with a consumer for this long are taken over (it is taken to have died).
CLAIM_IDLE_MS = 60_000


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def open_bus(settings: Settings, consumer: str | None = None) -> OpenedxBus:
    """The bus the settings name, read as ``consumer`` of their consumer group."""
    name = consumer or default_consumer()
    if settings.openedx_bus == "redis":
        url = settings.openedx_bus_url or settings.redis_url
        if not url:
            raise SettingsError(
                "COURSEINFRA_OPENEDX_BUS=redis needs COURSEINFRA_OPENEDX_BUS_URL or COURSEINFRA_REDIS_URL"
            )
        return RedisOpenedxBus.from_url(url, settings.openedx_consumer_group, name)
    return SqliteOpenedxBus(settings.embedded_openedx_bus_path, settings.openedx_consumer_group, name)


@dataclass
class ConsumeReport:
    """What consuming did: entries read and acknowledged, those applied, and those not (skipped, or
    kept in failed events with their reason)."""

    entries: int = 0
    applied: int = 0
    not_applied: int = 0

    def add(self, entries: int, report: IngestReport) -> None:
        self.entries += entries
        self.applied += report.counters.total(SUCCESS)
        self.not_applied += len(report.rejected)


def consume(
    app: App,
    bus: OpenedxBus,
    streams: Sequence[str],
    *,
    once: bool = False,
    count: int = 100,
    block_ms: int = 1000,
    keep_going: Callable[[], bool] = lambda: True,
) -> ConsumeReport:
    """Read, ingest and acknowledge entries until ``keep_going`` says stop (``once``: until no entry is
    left). Entries idle with a dead consumer of the group are claimed first."""
    report = ConsumeReport()
    while keep_going():
        entries = bus.claim_idle(streams, min_idle_ms=CLAIM_IDLE_MS, count=count) or bus.read(
            streams, count=count, block_ms=0 if once else block_ms
        )
        if not entries:
            if once:
                break
            continue
        lines = [orjson.dumps(entry_line(entry)).decode() for entry in entries]
        source = f"openedx:{entries[0].stream}"
        report.add(len(entries), ingest(lines, source, app.router, app.uow_factory))
        bus.ack(entries)
    return report
