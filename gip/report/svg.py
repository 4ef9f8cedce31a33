"""Small inline-SVG pieces for the report: a time scale and axis, bars, histograms, lines.

Pure string building. Every piece of text goes through :func:`esc`; numbers are rounded to
one decimal so that the page stays small.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

WIDTH = 1200  # viewBox width of every chart
LEFT = 120  # room for row labels


def esc(value: object) -> str:
    """HTML-escape anything shown on the page (quotes too: it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


_DATES: dict[int, str] = {}


def _date(day: int) -> str:
    text = _DATES.get(day)
    if text is None:
        text = _DATES[day] = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")
    return text


def _clock(t: float, seconds: bool = True) -> str:
    s = int(t) % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}" + (f":{s % 60:02d}" if seconds else "")


def utc(t: float, *, seconds: bool = True) -> str:
    """``2026-01-10 12:00:05 UTC``: every time on the page says its zone."""
    return f"{_date(int(t) // 86400)} {_clock(t, seconds)} UTC"


def span(t0: float, t1: float) -> str:
    """``2026-01-10 08:01:00-08:10:00 UTC`` (the end's date only when it differs)."""
    d0, d1 = int(t0) // 86400, int(t1) // 86400
    end = _clock(t1) if d0 == d1 else f"{_date(d1)} {_clock(t1)}"
    return f"{_date(d0)} {_clock(t0)}-{end} UTC"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = round(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


@dataclass(frozen=True)
class Scale:
    """Epoch seconds ``[t0, t1]`` onto ``[x0, x0 + width]``."""

    t0: float
    t1: float
    x0: float = LEFT
    width: float = WIDTH - LEFT - 10

    def x(self, t: float) -> float:
        return self.x0 + (t - self.t0) / (self.t1 - self.t0) * self.width

    def w(self, seconds: float) -> float:
        return seconds / (self.t1 - self.t0) * self.width


def ticks(t0: float, t1: float, *, count: int = 6) -> list[float]:
    """Round tick times (a whole number of minutes, hours or days) within ``[t0, t1]``."""
    span = max(t1 - t0, 1.0)
    steps = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400]
    step = next((s for s in steps if span / s <= count), steps[-1])
    first = -(-t0 // step) * step
    return [first + i * step for i in range(int((t1 - first) // step) + 1)]


def axis(scale: Scale, *, y: float, height: float) -> str:
    """Grid lines and UTC labels under a chart of ``height`` starting at ``y``."""
    parts = []
    for t in ticks(scale.t0, scale.t1):
        if scale.x(t) > WIDTH - 45:
            continue  # its label would run off the chart
        x = num(scale.x(t))
        parts.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{num(y)}" y2="{num(y + height)}"/>'
                     f'<text class="tick ax" x="{x}" y="{num(y + height + 12)}">{utc(t, seconds=False)}</text>')
    return "".join(parts)


def svg(body: str, *, height: float, label: str, cls: str = "chart") -> str:
    return f'<svg class="{cls}" role="img" aria-label="{esc(label)}" viewBox="0 0 {WIDTH} {num(height)}">{body}</svg>'


def bars_over_time(series: Sequence[tuple[str, str, Sequence[tuple[float, int]]]], *, scale: Scale,
                   bucket: float, label: str, height: float = 140) -> str:
    """Grouped bars per time bucket: ``series`` is (name, css class, [(bucket start, count)])."""
    top = max((c for _, _, points in series for _, c in points), default=0) or 1
    plot = height - 30
    slot = scale.w(bucket) / max(len(series), 1)
    parts = [axis(scale, y=5, height=plot)]
    for i, (name, cls, points) in enumerate(series):
        for start, c in points:
            h = plot * c / top
            parts.append(f'<rect class="{cls}" x="{num(scale.x(start) + i * slot)}" y="{num(5 + plot - h)}" '
                         f'width="{num(max(slot - 0.5, 0.5))}" height="{num(h)}"><title>{esc(name)} '
                         f'{esc(utc(start, seconds=False))}: {c}</title></rect>')
    parts.append(f'<text class="tick" x="2" y="14">max {top}</text>')
    return svg("".join(parts), height=height, label=label)


def histogram(values: Sequence[float], *, label: str, bins: int = 30, height: float = 140) -> str:
    """A distribution of durations with p50, p95 and max marked."""
    from gip.report.model import quantile

    if not values:
        return f'<p class="none">{esc(label)}: no data in this window</p>'
    hi = max(values) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / hi * bins))] += 1
    top, plot = max(counts), height - 45
    scale = Scale(0, hi)
    step = scale.width / bins
    parts = []
    for i, c in enumerate(counts):
        h = plot * c / top
        parts.append(f'<rect class="hist" x="{num(scale.x0 + i * step)}" y="{num(5 + plot - h)}" '
                     f'width="{num(step - 1)}" height="{num(h)}"><title>{esc(duration(i * hi / bins))}-'
                     f'{esc(duration((i + 1) * hi / bins))}: {c}</title></rect>')
    for row, (name, q) in enumerate((("p50", 0.5), ("p95", 0.95), ("max", 1.0))):
        v = quantile(list(values), q)
        x = num(scale.x(v))
        parts.append(f'<line class="q" x1="{x}" x2="{x}" y1="5" y2="{num(5 + plot + 4 + 11 * row)}"/>'
                     f'<text class="tick" x="{x}" y="{num(plot + 16 + 11 * row)}" text-anchor="end">{name} '
                     f"{duration(v)}&#160;</text>")
    parts.append(f'<text class="tick" x="2" y="14">{esc(label)}</text><text class="tick" x="2" y="28">n={len(values)}</text>')
    return svg("".join(parts), height=height, label=label)


def step_line(points: Sequence[tuple[float, float]], *, scale: Scale, label: str, height: float = 100,
              cls: str = "line") -> str:
    """A step function (a level holds until the next point) up to the scale's end."""
    top = max((v for _, v in points), default=0) or 1
    plot = height - 30

    def y(v: float) -> str:
        return num(5 + plot - plot * v / top)

    d, last = [], None
    for t, v in points:
        d.append(f"{'M' if last is None else 'H'}{num(scale.x(t))}" + ("" if last is None else f"V{y(v)}"))
        if last is None:
            d[-1] += f" {y(v)}"
        last = v
    d.append(f"H{num(scale.x(scale.t1))}")
    body = (axis(scale, y=5, height=plot) + f'<path class="{cls}" d="{"".join(d)}"/>'
            + f'<text class="tick" x="2" y="14">max {num(top)}</text>')
    return svg(body, height=height, label=label)


def dots(points: Sequence[tuple[float, float, str]], *, scale: Scale, label: str, height: float = 100) -> str:
    """A scatter of (time, value, hover text)."""
    top = max((v for _, v, _ in points), default=0) or 1
    plot = height - 30
    parts = [axis(scale, y=5, height=plot)]
    for t, v, text in points:
        parts.append(f'<circle class="dot" cx="{num(scale.x(t))}" cy="{num(5 + plot - plot * v / top)}" r="2.5">'
                     f'<title>{esc(text)}</title></circle>')
    parts.append(f'<text class="tick" x="2" y="14">max {esc(duration(top))}</text>')
    return svg("".join(parts), height=height, label=label)
