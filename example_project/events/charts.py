"""Server-rendered SVG charts: readable without JavaScript, a ``<title>`` on every point.

Hand-written rather than a library: three small chart kinds (sparkline, line over time,
labelled bars) are a hundred lines of SVG, while pygal or matplotlib would add a dependency
(and matplotlib a second or two of import) for output we would then have to restyle.
Every text that reaches the markup is escaped here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

Point = tuple[int, int]  # (epoch seconds, value)

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 44, 12, 12, 28


def _clock(epoch: int, with_date: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%d %b %H:%M" if with_date else "%H:%M:%S")


def _nice_max(value: float) -> int:
    """A round number at least ``value`` (at least 1), for the top of a y axis."""
    if value <= 1:
        return 1
    step = 1
    while step * 10 < value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def sparkline(points: Sequence[Point], width: int = 180, height: int = 36) -> SafeString:
    """A tiny line, one vertex per bucket, for a list of projects."""
    top = _nice_max(max((v for _, v in points), default=0))
    step = width / max(len(points) - 1, 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}"
        for i, (_, v) in enumerate(points)
    )
    total = sum(v for _, v in points)
    return mark_safe(
        f'<svg class="sparkline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
        f"<title>{total} events in the last hour</title>"
        f'<polyline fill="none" stroke="#3b6fd8" stroke-width="1.5" points="{coords}"/></svg>'
    )


def _frame(width: int, height: int, top: int, label: str) -> tuple[list[str], int, int]:
    """The axes and y ticks; returns the parts and the plot's inner width and height."""
    inner_w = width - MARGIN_LEFT - MARGIN_RIGHT
    inner_h = height - MARGIN_TOP - MARGIN_BOTTOM
    x0, y0 = MARGIN_LEFT, MARGIN_TOP + inner_h
    parts = [
        f'<line class="axis" x1="{x0}" y1="{MARGIN_TOP}" x2="{x0}" y2="{y0}" stroke="#555"/>',
        f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0 + inner_w}" y2="{y0}" stroke="#555"/>',
        f'<text x="{x0 + 6}" y="{MARGIN_TOP + 10}" font-size="10" fill="#555">'
        f"{escape(label)}</text>",
    ]
    for fraction in (0, 0.5, 1):
        y = y0 - fraction * inner_h
        value = top * fraction
        text = f"{value:g}"
        parts.append(
            f'<text class="tick" x="{x0 - 4}" y="{y + 3:.1f}" font-size="10" '
            f'text-anchor="end" fill="#555">{text}</text>'
        )
        parts.append(
            f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + inner_w}" y2="{y:.1f}" stroke="#eee"/>'
        )
    return parts, inner_w, inner_h


def _svg(css_class: str, width: int, height: int, title: str, parts: list[str]) -> SafeString:
    return mark_safe(
        f'<svg class="chart {css_class}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>'
        + "".join(parts)
        + "</svg>"
    )


def line_chart(
    points: Sequence[Point],
    title: str,
    width: int = 720,
    height: int = 200,
    unit: str = "events",
    with_date: bool = False,
) -> SafeString:
    """Counts over time: a line with a hoverable dot per bucket and time labels below."""
    top = _nice_max(max((v for _, v in points), default=0))
    parts, inner_w, inner_h = _frame(width, height, top, unit)
    step = inner_w / max(len(points) - 1, 1)
    y0 = MARGIN_TOP + inner_h
    coords = []
    dots = []
    for i, (epoch, value) in enumerate(points):
        x = MARGIN_LEFT + i * step
        y = y0 - (value / top) * inner_h
        coords.append(f"{x:.1f},{y:.1f}")
        dots.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2" fill="#3b6fd8">'
            f"<title>{_clock(epoch, with_date)} UTC: {value} {escape(unit)}</title></circle>"
        )
    parts.append(
        f'<polyline fill="none" stroke="#3b6fd8" stroke-width="1.5" points="{" ".join(coords)}"/>'
    )
    parts.extend(dots)
    if points:
        last = len(points) - 1
        for i in sorted({0, len(points) // 2, last}):
            x = MARGIN_LEFT + i * step
            anchor = "start" if i == 0 else "end" if i == last else "middle"
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{y0 + 16}" font-size="10" '
                f'text-anchor="{anchor}" fill="#555">{_clock(points[i][0], with_date)}</text>'
            )
    return _svg("line-chart", width, height, title, parts)


def bar_chart(
    bars: Sequence[tuple[str, int]],
    title: str,
    width: int = 360,
    height: int = 200,
    unit: str = "events",
) -> SafeString:
    """Labelled bars, one per category, each with its count on hover."""
    top = _nice_max(max((v for _, v in bars), default=0))
    parts, inner_w, inner_h = _frame(width, height, top, unit)
    y0 = MARGIN_TOP + inner_h
    slot = inner_w / max(len(bars), 1)
    for i, (label, value) in enumerate(bars):
        bar_h = (value / top) * inner_h
        x = MARGIN_LEFT + i * slot + slot * 0.15
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y0 - bar_h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{max(bar_h, 0.5):.1f}" fill="#3b6fd8">'
            f"<title>{escape(label)}: {value} {escape(unit)}</title></rect>"
        )
        parts.append(
            f'<text class="tick" x="{x + slot * 0.35:.1f}" y="{y0 + 16}" font-size="10" '
            f'text-anchor="middle" fill="#555">{escape(label)}</text>'
        )
    return _svg("bar-chart", width, height, title, parts)
