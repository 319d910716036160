"""Bar charts drawn on the server as inline SVG: no script, a title and a description for assistive
technology, and the same numbers as a table beside them (``templates/charts.html``'s ``bar_chart``).

Only geometry is computed here; the template writes the elements, so every label is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

#: The drawing's size in SVG units (it scales to the page's width).
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 40


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    #: Whether the label is written under the bar (a chart of many bars labels some of them only).
    labelled: bool


@dataclass(frozen=True, slots=True)
class BarChart:
    """A chart of ``bars`` whose tallest is ``peak``; ``ident`` names its elements (ids must be unique on
    the page), ``title`` and ``description`` are what a screen reader announces."""

    ident: str
    title: str
    description: str
    x_label: str
    y_label: str
    bars: tuple[Bar, ...]
    peak: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def total(self) -> int:
        return sum(bar.value for bar in self.bars)


def bar_chart(
    ident: str,
    title: str,
    points: Sequence[tuple[str, int]],
    *,
    x_label: str,
    y_label: str,
    max_labels: int = 12,
) -> BarChart:
    """The geometry of a bar per ``(label, value)``, in order, scaled to the largest value."""
    peak = max((value for _, value in points), default=0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(points), 1)
    gap = min(4.0, slot * 0.2)
    every = max(1, -(-len(points) // max_labels))  # ceil: at most ``max_labels`` labels
    bars = []
    for index, (label, value) in enumerate(points):
        bar_h = plot_h * value / peak if peak else 0.0
        bars.append(
            Bar(
                label=label,
                value=value,
                x=round(LEFT + index * slot + gap / 2, 1),
                y=round(TOP + plot_h - bar_h, 1),
                width=round(max(slot - gap, 1.0), 1),
                height=round(bar_h, 1),
                labelled=index % every == 0,
            )
        )
    description = "; ".join(f"{label}: {value}" for label, value in points if value) or "no data"
    return BarChart(ident, title, description, x_label, y_label, tuple(bars), peak)


def daily_points(counts: Sequence[tuple[date, int]], *, days: int) -> list[tuple[str, int]]:
    """One point per day from the first counted day to the last (zeros between), the last ``days`` of
    them at most."""
    if not counts:
        return []
    by_day = dict(counts)
    last = max(by_day)
    first = max(min(by_day), last - timedelta(days=days - 1))
    span = (last - first).days + 1
    return [
        ((first + timedelta(days=n)).isoformat(), by_day.get(first + timedelta(days=n), 0))
        for n in range(span)
    ]
