"""The jobs page, the console's landing page: each job's counters and open failed events, events per
second over a window, the relays' lag, the event streams' lengths, and the linked groups' drift and
sync failures and the report runs by status.

The same use cases as ``/metrics`` (``services.monitoring``, ADR 0025) and the same permission as the
API's ``/v1/counters`` (``read``, for the whole instance: a token scoped to courses reaches no job).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, Response

from courseinfra.domain.access import Permission
from courseinfra.entrypoints.console.timeseries import line_chart, rate_text, resample
from courseinfra.entrypoints.console.web import AppDep, Page, render
from courseinfra.services import monitoring

log = logging.getLogger(__name__)

PAGE = Page(
    label="Jobs", path="/jobs", order=10, read=Permission.READ, write=Permission.OPERATE, landing=True
)
router = PAGE.router()

#: The windows of the events-per-second charts, as the selector offers them.
WINDOWS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24)}
#: Spans a chart's window is cut into (a minute each over an hour): each is one step of the line and
#: one row of its table, whatever the number of samples.
SLOTS = 60

Window = Annotated[str, Query(pattern="^(1h|6h|24h)$", description="The charts' window: 1h, 6h or 24h.")]


@router.get("/jobs", response_class=HTMLResponse)
def jobs(request: Request, app: AppDep, window: Window = "1h") -> Response:
    health = monitoring.system_health(app.uow_factory)
    span = WINDOWS[window]
    rates = monitoring.event_rates(
        app.uow_factory, window=span, counters=("total",), now=health.at, spans=SLOTS
    )
    every = timedelta(seconds=app.settings.counter_sample_seconds)
    charts = [
        line_chart(
            f"rate-{index}",
            f"{series.job}: events per second",
            resample(series.points, start=health.at - span, end=health.at, slots=SLOTS, first_span=every),
        )
        for index, series in enumerate(rates)
    ]
    streams: dict[str, int] | None
    try:
        streams = monitoring.stream_lengths(app.stream)
        stream_error = None
    except Exception as error:  # the stream's server: whatever its client raises, the page stays up
        log.warning("reading the event streams' lengths failed", exc_info=True)
        streams, stream_error = None, type(error).__name__
    work = sorted({name for job in health.jobs for name in job.counters} - set(monitoring.EVENT_COUNTERS))
    return render(
        request,
        "jobs/index.html",
        {
            "health": health,
            "event_counters": monitoring.EVENT_COUNTERS,
            "work_counters": work,
            "window": window,
            "windows": list(WINDOWS),
            "charts": charts,
            "streams": streams,
            "stream_error": stream_error,
            "stream_configured": app.stream is not None,
            "sample_seconds": app.settings.counter_sample_seconds,
            "number": number,
            "rate_text": rate_text,
            "age_text": age_text,
        },
        page=PAGE,
    )


def number(value: int) -> str:
    """A count with thousands separated (``12,345``)."""
    return f"{value:,}"


def age_text(seconds: float) -> str:
    """An age as people read it: ``45 s``, ``12 min 5 s``, ``3 h 20 min``, ``2 d 4 h``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
