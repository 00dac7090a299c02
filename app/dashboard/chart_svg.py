"""Small server-side SVG charts besides the ROC plot: the epsilon comparison and trend lines.

Like `roc_svg`, each chart is one escaped `<svg>` string built in Python, so pages need no
plotting library, no script and nothing from the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from app.dashboard.roc_svg import PALETTE

FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
INK, MUTED, GRID, RED, BLUE = "#1f2329", "#4a505a", "#e3e6ea", "#b42318", "#0072B2"
# Average advance of a character of the system sans at 12 px, for fitting labels.
CHAR_W = 6.6


def fit_text(text: str, room: float, size: float = 12.0) -> str:
    """`text` shortened with an ellipsis to about `room` pixels at font `size`."""
    fits = max(int(room / (CHAR_W * size / 12.0)), 4)
    return text if len(text) <= fits else text[: fits - 1] + "…"


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (an axis end)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value * (1 - 1e-9))


def linear_ticks(high: float, count: int = 5) -> list[float]:
    """About `count` evenly spaced round ticks from 0 to `high` (itself a `nice_max`)."""
    step = nice_max(high / count)
    return [i * step for i in range(int(high / step + 1e-9) + 1)]


def _num(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class BoundBar:
    """One empirical lower bound on epsilon, as the comparison chart shows it."""

    label: str
    value: float
    confidence: float


def epsilon_svg(bars: Sequence[BoundBar], *, claimed: float | None, width: int = 720) -> str:
    """Horizontal bars from 0 to each lower bound, and the claimed epsilon as a dashed line.

    A bar beyond the claim is drawn red: the audit proves more leakage than the claim allows.
    """
    if not bars:
        raise ValueError("no bounds to draw")
    # Room for the longest label (about 6.6 px a character at 12 px), within reason; a
    # longer one is shortened with its full text in a tooltip, never cut by the frame.
    label_room = min(max(CHAR_W * max(len(b.label) for b in bars) + 16, 110.0), width * 0.42)
    left, right, top, row = label_room, width - 110.0, 34.0, 30.0
    bottom = top + row * len(bars)
    height = int(bottom + 44)
    high = nice_max(max([b.value for b in bars] + [claimed or 0.0, 0.1]) * 1.1)

    def x(value: float) -> float:
        return left + max(0.0, min(value, high)) / high * (right - left)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="epsilon-chart" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" {FONT} '
        'aria-label="Claimed epsilon against the empirical lower bounds">',
        "<title>Claimed epsilon against each attack's empirical lower bound</title>",
    ]
    for tick in linear_ticks(high):
        parts.append(
            f'<line class="grid" x1="{x(tick):.1f}" y1="{top - 6:.1f}" x2="{x(tick):.1f}" '
            f'y2="{bottom + 4:.1f}" stroke="{GRID}"/><text x="{x(tick):.1f}" '
            f'y="{bottom + 18:.1f}" text-anchor="middle" font-size="11" fill="{MUTED}">'
            f"{_num(tick)}</text>"
        )
    parts.append(
        f'<text x="{(left + right) / 2:.1f}" y="{height - 8}" text-anchor="middle" '
        f'font-size="12" fill="{INK}">ε (privacy loss; lower bounds hold with the confidence '
        "shown)</text>"
    )
    for i, bar in enumerate(bars):
        y = top + row * i
        over = claimed is not None and bar.value > claimed
        parts.append(
            f'<text x="{left - 8:.1f}" y="{y + row / 2 + 4:.1f}" text-anchor="end" '
            f'font-size="12" fill="{INK}">{escape(fit_text(bar.label, left - 12))}'
            f"<title>{escape(bar.label)}</title></text>"
            f'<rect class="bound{" over-claim" if over else ""}" x="{left:.1f}" '
            f'y="{y + 6:.1f}" width="{max(x(bar.value) - left, 1.0):.1f}" '
            f'height="{row - 12:.1f}" fill="{RED if over else BLUE}" rx="2">'
            f"<title>{escape(bar.label)}: ε ≥ {_num(round(bar.value, 3))}</title></rect>"
            f'<text x="{x(bar.value) + 6:.1f}" y="{y + row / 2 + 4:.1f}" font-size="11" '
            f'fill="{INK}">ε ≥ {bar.value:.2f} ({bar.confidence * 100:g}%)</text>'
        )
    if claimed is not None:
        # The label sits over the line, turned inwards near either edge so it is never cut.
        text = f"claimed ε = {_num(round(claimed, 3))}"
        half = CHAR_W * len(text) / 2
        anchor = "middle"
        if x(claimed) - half < 4:
            anchor = "start"
        elif x(claimed) + half > width - 4:
            anchor = "end"
        parts.append(
            f'<line class="claimed" x1="{x(claimed):.1f}" y1="{top - 10:.1f}" '
            f'x2="{x(claimed):.1f}" y2="{bottom + 4:.1f}" stroke="{RED}" stroke-width="2" '
            f'stroke-dasharray="6 4"/><text class="claimed-label" x="{x(claimed):.1f}" '
            f'y="{top - 16:.1f}" text-anchor="{anchor}" font-size="12" fill="{RED}">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Series:
    """One line of a trend chart: a value per audit, None where the audit lacks it."""

    label: str
    values: Sequence[float | None]
    dashed: bool = False


def trend_svg(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Callable[[float], str] = _num,
    y_max: float | None = None,
    width: int = 360,
    height: int = 200,
    empty_note: str = "nothing measured",
) -> str:
    """A small line chart over audits in time order (x: one step per audit, labelled by
    version), y from 0, one path per series with a dot per measured point; `empty_note` is
    written across a chart where no audit measured anything."""
    left, right, top, bottom = 46.0, width - 12.0, 40.0, height - 30.0
    measured = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    high = y_max if y_max is not None else nice_max(max(measured, default=0.9) * 1.1)
    n = len(x_labels)

    def x(i: int) -> float:
        return (left + right) / 2 if n == 1 else left + i * (right - left) / (n - 1)

    def y(value: float) -> float:
        return bottom - max(0.0, min(value, high)) / high * (bottom - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend-chart" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" {FONT} '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text class="chart-title" x="8" y="14" font-size="{_title_size(title, width)}" '
        f'font-weight="600" fill="{INK}">{escape(title)}</text>',
    ]
    for tick in linear_ticks(high, count=4):
        parts.append(
            f'<line class="grid" x1="{left:.1f}" y1="{y(tick):.1f}" x2="{right:.1f}" '
            f'y2="{y(tick):.1f}" stroke="{GRID}"/><text x="{left - 6:.1f}" '
            f'y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10" fill="{MUTED}">'
            f"{escape(fmt(tick))}</text>"
        )
    every = max(1, math.ceil(n / 8))
    for i, label in enumerate(x_labels):
        if i % every == 0 or i == n - 1:
            # The end labels lie on the plot's edges: anchored inwards so none is cut.
            anchor = "middle" if n == 1 or 0 < i < n - 1 else ("start" if i == 0 else "end")
            parts.append(
                f'<text class="x-label" x="{x(i):.1f}" y="{bottom + 16:.1f}" '
                f'text-anchor="{anchor}" font-size="10" fill="{MUTED}">'
                f"{escape(fit_text(label, 84, 10))}<title>{escape(label)}</title></text>"
            )
    if not measured:
        parts.append(
            f'<text class="empty-note" x="{(left + right) / 2:.1f}" '
            f'y="{(top + bottom) / 2:.1f}" text-anchor="middle" font-size="11" '
            f'fill="{MUTED}">{escape(fit_text(empty_note, right - left - 8, 11))}</text>'
        )
    legend_x = 8.0
    for k, line in enumerate(series):
        colour = RED if line.dashed else PALETTE[k % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if line.dashed else ""
        segments: list[list[tuple[float, float]]] = [[]]
        for i, value in enumerate(line.values):
            if value is None or not math.isfinite(value):
                segments.append([])
                continue
            segments[-1].append((x(i), y(value)))
            parts.append(
                f'<circle class="point" cx="{x(i):.1f}" cy="{y(value):.1f}" r="3" '
                f'fill="{colour}"><title>{escape(line.label)} {escape(x_labels[i])}: '
                f"{escape(fmt(value))}</title></circle>"
            )
        for points in segments:
            if len(points) > 1:
                d = " ".join(
                    f"{'M' if j == 0 else 'L'}{px:.1f},{py:.1f}"
                    for j, (px, py) in enumerate(points)
                )
                parts.append(
                    f'<path class="trend" d="{d}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"{dash}/>'
                )
        parts.append(
            f'<line x1="{legend_x:.1f}" y1="27" x2="{legend_x + 16:.1f}" y2="27" '
            f'stroke="{colour}" stroke-width="2"{dash}/><text x="{legend_x + 20:.1f}" y="31" '
            f'font-size="10" fill="{INK}">{escape(line.label)}</text>'
        )
        legend_x += 30 + CHAR_W * 10 / 12 * len(line.label)
    parts.append("</svg>")
    return "".join(parts)


def _title_size(title: str, width: int) -> str:
    """A chart title's font size: 13 px, smaller (down to 10) when it would pass the edge."""
    room = width - 16
    size = 13.0
    while size > 10 and CHAR_W * 1.08 * size / 12 * len(title) > room:
        size -= 0.5
    return f"{size:g}"


def xy_svg(
    title: str,
    points: Sequence[tuple[float, float]],
    *,
    x_title: str,
    fmt_y: Callable[[float], str] = _num,
    y_max: float | None = None,
    width: int = 360,
    height: int = 220,
) -> str:
    """Points on a numeric x axis (log when the values span 20x or more), joined in x order:
    a trade-off curve, where equal steps between audits would misstate the distances."""
    if not points:
        raise ValueError("no points to draw")
    ordered = sorted(points)
    xs = [p[0] for p in ordered]
    if any(not math.isfinite(v) or v <= 0 for v in xs):
        raise ValueError("x values must be positive and finite")
    log = max(xs) / min(xs) >= 20
    left, right, top, bottom = 46.0, width - 16.0, 30.0, height - 46.0
    if log:
        low = 10.0 ** math.floor(math.log10(min(xs)))
        high_x = 10.0 ** math.ceil(math.log10(max(xs)))
        x_ticks = [10.0**k for k in range(round(math.log10(low)), round(math.log10(high_x)) + 1)]

        def x(value: float) -> float:
            return left + math.log10(value / low) / math.log10(high_x / low) * (right - left)

    else:
        high_x = nice_max(max(xs) * 1.05)
        x_ticks = linear_ticks(high_x, count=5)

        def x(value: float) -> float:
            return left + value / high_x * (right - left)

    measured = [p[1] for p in ordered if math.isfinite(p[1])]
    high = y_max if y_max is not None else nice_max(max(measured, default=1.0) * 1.1)

    def y(value: float) -> float:
        return bottom - max(0.0, min(value, high)) / high * (bottom - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend-chart xy-chart" '
        f'data-x-scale="{"log" if log else "linear"}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" {FONT} aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="8" y="14" font-size="{_title_size(title, width)}" '
        f'font-weight="600" fill="{INK}">{escape(title)}</text>',
    ]
    for tick in linear_ticks(high, count=4):
        parts.append(
            f'<line class="grid" x1="{left:.1f}" y1="{y(tick):.1f}" x2="{right:.1f}" '
            f'y2="{y(tick):.1f}" stroke="{GRID}"/><text x="{left - 6:.1f}" '
            f'y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10" fill="{MUTED}">'
            f"{escape(fmt_y(tick))}</text>"
        )
    for i, tick in enumerate(x_ticks):
        anchor = "start" if i == 0 else ("end" if i == len(x_ticks) - 1 else "middle")
        parts.append(
            f'<line class="grid" x1="{x(tick):.1f}" y1="{top:.1f}" x2="{x(tick):.1f}" '
            f'y2="{bottom + 4:.1f}" stroke="{GRID}"/><text class="x-tick" x="{x(tick):.1f}" '
            f'y="{bottom + 16:.1f}" text-anchor="{anchor}" font-size="10" fill="{MUTED}">'
            f"{_num(tick)}</text>"
        )
    parts.append(
        f'<text x="{(left + right) / 2:.1f}" y="{height - 10}" text-anchor="middle" '
        f'font-size="11" fill="{INK}">{escape(x_title)}{" (log scale)" if log else ""}</text>'
    )
    d = " ".join(
        f"{'M' if j == 0 else 'L'}{x(px):.1f},{y(py):.1f}" for j, (px, py) in enumerate(ordered)
    )
    parts.append(f'<path class="trend" d="{d}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    for px, py in ordered:
        parts.append(
            f'<circle class="point" cx="{x(px):.1f}" cy="{y(py):.1f}" r="3.5" fill="{BLUE}">'
            f"<title>ε {_num(round(px, 3))}: {escape(fmt_y(py))}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
