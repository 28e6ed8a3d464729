"""Charts as server-rendered SVG: bars and lines over time, colours from the stylesheet (no inline style).

Each chart is an `<svg>` with a fixed viewBox that the stylesheet scales to its box; every point
carries a `<title>` (the browser's tooltip), and every label is escaped.

Example:
    >>> bar_chart("chart-requests", ["10:00", "10:01"], [Series("requests", [3, 5])])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmlens.web.html import Markup, join, tag

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 66, 8, 10, 22
MAX_MARKED_POINTS = 60  # lines with at most this many points get a marker (and tooltip) per point


@dataclass
class Series:
    name: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `value` (the axis top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover


def _plain_number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _frame(chart_id: str, label: str, labels: Sequence[str], top: float,
           fmt: Callable[[float], str], body: Markup, series: Sequence[Series]) -> Markup:  # fmt: skip
    plot_h = HEIGHT - TOP - BOTTOM
    grid = []
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        grid.append(tag("line", x1=LEFT, x2=WIDTH - RIGHT, y1=f"{y:.1f}", y2=f"{y:.1f}", class_="grid"))
        grid.append(tag("text", fmt(value), x=LEFT - 4, y=f"{y + 3:.1f}", class_="axis-label y-label"))
    ticks = []
    if labels:
        for index in sorted({0, len(labels) // 2, len(labels) - 1}):
            x = _x(index, len(labels))
            anchor = "start" if index == 0 else ("end" if index == len(labels) - 1 else "middle")
            ticks.append(tag("text", labels[index], x=f"{x:.1f}", y=HEIGHT - 6, class_="axis-label",
                             text_anchor=anchor))  # fmt: skip
    legend = tag(
        "ul",
        [tag("li", tag("span", class_=f"swatch series-{i}"), s.name) for i, s in enumerate(series)],
        class_="legend",
    )
    svg = tag(
        "svg", tag("title", label), join(grid), body, join(ticks),
        viewBox=f"0 0 {WIDTH} {HEIGHT}", role="img", aria_label=label, class_="chart-svg",
        xmlns="http://www.w3.org/2000/svg",
    )  # fmt: skip
    return tag("figure", tag("figcaption", label), svg, legend, id=chart_id, class_="chart")


def _x(index: int, count: int) -> float:
    plot_w = WIDTH - LEFT - RIGHT
    return LEFT + (plot_w * (index + 0.5) / count if count else 0)


def _y(value: float, top: float) -> float:
    plot_h = HEIGHT - TOP - BOTTOM
    return TOP + plot_h - plot_h * min(value, top) / top


def bar_chart(chart_id: str, label: str, labels: Sequence[str], series: Sequence[Series],
              fmt: Callable[[float], str] = _plain_number) -> Markup:  # fmt: skip
    """Bars per time bucket; later series are drawn over earlier ones (errors over requests)."""
    top = _nice_max(max((v or 0 for s in series for v in s.values), default=0))
    count = len(labels)
    plot_w = WIDTH - LEFT - RIGHT
    width = max(plot_w / max(count, 1) * 0.8, 0.5)
    bars = []
    for number, s in enumerate(series):
        for index, value in enumerate(s.values):
            if not value:
                continue
            y = _y(value, top)
            bars.append(tag(
                "rect", tag("title", f"{labels[index]}: {s.name} {fmt(value)}"),
                x=f"{_x(index, count) - width / 2:.2f}", y=f"{y:.2f}", width=f"{width:.2f}",
                height=f"{HEIGHT - BOTTOM - y:.2f}", class_=f"bar series-{number}",
            ))  # fmt: skip
    return _frame(chart_id, label, labels, top, fmt, join(bars), series)


def line_chart(chart_id: str, label: str, labels: Sequence[str], series: Sequence[Series],
               fmt: Callable[[float], str] = _plain_number) -> Markup:  # fmt: skip
    """Lines per series over time buckets; a missing value (None) breaks the line."""
    top = _nice_max(max((v for s in series for v in s.values if v is not None), default=0))
    count = len(labels)
    paths = []
    for number, s in enumerate(series):
        segments: list[list[str]] = [[]]
        marks = []
        for index, value in enumerate(s.values):
            if value is None:
                segments.append([])
                continue
            x, y = _x(index, count), _y(value, top)
            segments[-1].append(f"{x:.1f},{y:.1f}")
            if count <= MAX_MARKED_POINTS:
                tip = tag("title", f"{labels[index]}: {s.name} {fmt(value)}")
                marks.append(tag("circle", tip, cx=f"{x:.1f}", cy=f"{y:.1f}", r=2.5,
                                 class_=f"point series-{number}"))  # fmt: skip
        for points in segments:
            if len(points) == 1:
                x, y = points[0].split(",")
                marks.append(tag("circle", cx=x, cy=y, r=2.5, class_=f"point series-{number}"))
            elif points:
                paths.append(tag("polyline", points=" ".join(points), class_=f"line series-{number}"))
        paths.extend(marks)
    return _frame(chart_id, label, labels, top, fmt, join(paths), series)


def empty_chart(chart_id: str, label: str, message: str) -> Markup:
    return tag("figure", tag("figcaption", label), tag("p", message, class_="empty"), id=chart_id,
               class_="chart")  # fmt: skip
