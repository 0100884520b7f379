"""Inline SVG charts for the KPI report: plain markup, no scripts, no fonts or images fetched.

Mail clients and the offline evidence pack show them as they are; every chart also has its
numbers in a table next to it (the chart is a reading aid, the table is the record).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = "font-family=\"'Noto Sans CJK SC','Microsoft YaHei',sans-serif\""
GREEN, YELLOW, RED, GREY, BLUE, ORANGE = (
    "#1e8e3e",
    "#f9ab00",
    "#d93025",
    "#9aa0a6",
    "#1a73e8",
    "#e8710a",
)


@dataclass(frozen=True)
class Bar:
    label: str
    pct: float | None  # None: no data (grey, labelled)


def _colour(pct: float, good: float, fair: float) -> str:
    return GREEN if pct >= good else (YELLOW if pct >= fair else RED)


def pct_bars(
    bars: Sequence[Bar],
    *,
    good: float = 99.0,
    fair: float = 95.0,
    width: int = 640,
    title: str = "",
) -> str:
    """Horizontal bars 0–100 % (green ≥ good, yellow ≥ fair, red below; grey = no data)."""
    label_w, row_h, top = 200, 26, 24 if title else 6
    plot_w = width - label_w - 70
    height = top + row_h * max(1, len(bars)) + 22
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" {FONT} font-size="12">'
    ]
    if title:
        out.append(f'<text x="0" y="15" font-size="13" font-weight="bold">{escape(title)}</text>')
    for i, bar in enumerate(bars):
        y = top + i * row_h
        out.append(
            f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end">{escape(bar.label)}</text>'
        )
        out.append(f'<rect x="{label_w}" y="{y + 4}" width="{plot_w}" height="18" fill="#f1f3f4"/>')
        if bar.pct is None:
            out.append(f'<text x="{label_w + 6}" y="{y + 17}" fill="{GREY}">无数据 no data</text>')
            continue
        w = max(1, round(plot_w * min(max(bar.pct, 0), 100) / 100))
        out.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="18" '
            f'fill="{_colour(bar.pct, good, fair)}"/>'
        )
        out.append(f'<text x="{label_w + plot_w + 6}" y="{y + 17}">{bar.pct:.2f}%</text>')
    axis_y = top + row_h * max(1, len(bars)) + 14
    for tick in (0, 50, 100):
        x = label_w + plot_w * tick / 100
        out.append(
            f'<text x="{x:.0f}" y="{axis_y}" text-anchor="middle" fill="#5f6368" font-size="10">'
            f"{tick}%</text>"
        )
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: Sequence[float | None]


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str = "s",
    width: int = 640,
    height: int = 220,
    title: str = "",
) -> str:
    """Lines over labelled points (dates); gaps where a value is missing; y axis from 0."""
    left, right, top, bottom = 56, 16, 28 if title else 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    known = [v for s in series for v in s.values if v is not None]
    peak = max(known, default=0) or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" {FONT} font-size="11">'
    ]
    if title:
        out.append(f'<text x="0" y="15" font-size="13" font-weight="bold">{escape(title)}</text>')
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        out.append(
            f'<line x1="{left}" y1="{y:.0f}" x2="{left + plot_w}" y2="{y:.0f}" stroke="#dadce0"/>'
        )
        out.append(
            f'<text x="{left - 4}" y="{y + 4:.0f}" text-anchor="end" fill="#5f6368">'
            f"{_num(peak * frac)}{escape(unit)}</text>"
        )
    n = len(labels)
    if not known or n == 0:
        out.append(
            f'<text x="{left + 10}" y="{top + plot_h / 2:.0f}" fill="{GREY}">无数据 no data</text>'
        )
        out.append("</svg>")
        return "".join(out)

    def x_at(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    step = max(1, n // 8)
    for i, label in enumerate(labels):
        if i % step == 0 or i == n - 1:
            out.append(
                f'<text x="{x_at(i):.0f}" y="{top + plot_h + 16}" text-anchor="middle" '
                f'fill="#5f6368">{escape(label)}</text>'
            )
    for k, s in enumerate(series):
        points = [
            (x_at(i), top + plot_h * (1 - v / peak))
            for i, v in enumerate(s.values)
            if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2"/>'
            )
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{s.colour}"/>' for x, y in points]
        lx = left + k * 150
        out.append(f'<rect x="{lx}" y="{height - 12}" width="10" height="10" fill="{s.colour}"/>')
        out.append(f'<text x="{lx + 14}" y="{height - 3}">{escape(s.name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _num(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == 0 else f"{value:.1f}"
