"""Rates over time as a line chart drawn on the server: the jobs page's events per second.

:func:`resample` puts a series of :class:`~courseinfra.services.monitoring.RatePoint` (one per counter
sample, ADR 0025) onto a fixed number of equal slots of the window, so that a day of 10-second samples
is drawn (and listed) as a few dozen values; :func:`line_chart` computes the drawing's geometry. The
template (``templates/jobs/line_chart.html``) writes the SVG elements, so every label is escaped; there
is no script, the chart has a title and a description, and its numbers are in a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from courseinfra.services.monitoring import RatePoint

#: The drawing's size in SVG units (it scales to the page's width).
WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 34


@dataclass(frozen=True, slots=True)
class Slot:
    """A span of the window and the mean rate over the part of it that samples cover (None: no sample
    covers it, nothing was counted then and no rate is known)."""

    start: datetime
    end: datetime
    per_second: float | None


def resample(
    points: Sequence[RatePoint], *, start: datetime, end: datetime, slots: int, first_span: timedelta
) -> list[Slot]:
    """``points`` (oldest first) as ``slots`` equal spans from ``start`` to ``end``.

    A point is the rate between the previous sample and its own, so it covers the time from the previous
    point to it; the first point of the series, whose previous sample is not given, covers ``first_span``
    (the sampling period) before it. A slot's rate is the mean over the time its points cover, weighted
    by that time: the events counted in the covered time over its length. Linear in points and slots."""
    if slots < 1 or end <= start:
        raise ValueError("resample needs at least one slot and a window that ends after it starts")
    span = (end - start).total_seconds() / slots
    events = [0.0] * slots
    covered = [0.0] * slots
    previous: datetime | None = None
    for point in points:
        begin = previous if previous is not None else point.at - first_span
        previous = point.at
        low = max((begin - start).total_seconds(), 0.0)
        high = min((point.at - start).total_seconds(), span * slots)
        if high <= low:
            continue  # outside the window
        for index in range(int(low // span), min(math.ceil(high / span), slots)):
            overlap = min(high, (index + 1) * span) - max(low, index * span)
            if overlap > 0:
                events[index] += point.per_second * overlap
                covered[index] += overlap
    return [
        Slot(
            start + timedelta(seconds=index * span),
            start + timedelta(seconds=(index + 1) * span),
            events[index] / covered[index] if covered[index] > 0 else None,
        )
        for index in range(slots)
    ]


@dataclass(frozen=True, slots=True)
class Tick:
    """A label on an axis at ``position`` (x for the time axis, y for the rate axis)."""

    position: float
    text: str


@dataclass(frozen=True, slots=True)
class LineChart:
    """A rate over time: ``lines`` are SVG ``points`` attributes, one per run of covered slots (a slot
    no sample covers breaks the line); each slot is drawn as a level step over its span. ``ident`` names
    its elements (ids are unique on a page); ``title`` and ``description`` are what a screen reader
    announces; ``slots`` are the numbers the table beside it lists."""

    ident: str
    title: str
    description: str
    lines: tuple[str, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    slots: tuple[Slot, ...]
    peak: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def line_chart(ident: str, title: str, slots: Sequence[Slot], *, unit: str = "/s") -> LineChart:
    """The geometry of ``slots`` (equal spans, oldest first) on a rate axis from 0 to a round peak."""
    known = [slot.per_second for slot in slots if slot.per_second is not None]
    peak = nice_ceiling(max(known, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(slots), 1)
    lines: list[str] = []
    run: list[str] = []
    for index, slot in enumerate(slots):
        if slot.per_second is None:
            if run:
                lines.append(" ".join(run))
                run = []
            continue
        y = round(TOP + plot_h - plot_h * slot.per_second / peak, 1)
        run += [f"{round(LEFT + index * step, 1)},{y}", f"{round(LEFT + (index + 1) * step, 1)},{y}"]
    if run:
        lines.append(" ".join(run))
    y_ticks = tuple(
        Tick(round(TOP + plot_h - plot_h * share, 1), rate_text(peak * share) + unit) for share in (0, 0.5, 1)
    )
    x_ticks: tuple[Tick, ...] = ()
    if slots:
        first, last = slots[0].start, slots[-1].end
        middle = first + (last - first) / 2
        x_ticks = tuple(
            Tick(round(LEFT + plot_w * share, 1), moment.strftime("%H:%M"))
            for share, moment in ((0, first), (0.5, middle), (1, last))
        )
    return LineChart(ident, title, describe(slots, unit), tuple(lines), y_ticks, x_ticks, tuple(slots), peak)


def describe(slots: Sequence[Slot], unit: str) -> str:
    """What the chart shows, in a sentence: its peak and when, its mean over the covered slots."""
    known = [slot for slot in slots if slot.per_second is not None]
    if not known:
        return "no samples in this window"
    top = max(known, key=lambda slot: slot.per_second or 0.0)
    mean = sum(slot.per_second or 0.0 for slot in known) / len(known)
    return (
        f"peak {rate_text(top.per_second or 0.0)}{unit} at {top.start:%H:%M} UTC, "
        f"mean {rate_text(mean)}{unit} over the {len(known)} of {len(slots)} spans with samples"
    )


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``value`` (1 for 0): the
    top of an axis that reads well."""
    if value <= 0:
        return 1.0
    power = math.pow(10, math.floor(math.log10(value)))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * power * (1 + 1e-9):
            return factor * power
    return 10 * power  # pragma: no cover - the loop's last factor always holds


def rate_text(value: float) -> str:
    """A rate as people read it: whole and thousands separated from 100, three significant digits
    below, and ``<0.001`` below that (less than one event in a quarter of an hour)."""
    if value >= 100:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    if value < 0.001:
        return "<0.001"
    return f"{value:.3g}"
