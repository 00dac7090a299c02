"""Server-side SVG of ROC curves on log-log axes, for the dashboard's report page.

Leakage lives at low false-positive rates, which a linear ROC plot squashes into its corner;
log-log axes from the smallest measurable rate (1/n) to 1 show it. Built here in Python so the
page needs no plotting library, no JavaScript and nothing fetched from the network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
# Curves that coincide (loss and confidence rank records almost alike) must stay apart: each
# gets its own dash pattern and marker shape besides its colour, repeated in the legend.
DASHES = ("", "9 5", "2 4", "12 4 3 4", "6 3", "1 3", "14 6")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "circle", "square")
# Markers sit at these FPRs (and at each curve's end), so a hidden curve still shows its dots.
MARKER_FPRS = (0.001, 0.01, 0.1, 0.3)


@dataclass(frozen=True)
class Curve:
    """One attack's ROC points (FPR and TPR in [0, 1]) and its legend label."""

    label: str
    fpr: Sequence[float]
    tpr: Sequence[float]


@dataclass(frozen=True)
class LogLogFrame:
    """Maps rates onto the plot area; values outside [min, 1] are clipped to its edges."""

    x_min: float
    y_min: float
    left: float
    right: float
    top: float
    bottom: float

    def __post_init__(self) -> None:
        if not (0 < self.x_min < 1 and 0 < self.y_min < 1):
            raise ValueError("axis minima must lie strictly between 0 and 1")

    def x(self, fpr: float) -> float:
        """Horizontal position of an FPR (log scale, clipped to the axis range)."""
        return self.left + _log_fraction(fpr, self.x_min) * (self.right - self.left)

    def y(self, tpr: float) -> float:
        """Vertical position of a TPR (log scale, clipped; SVG y grows downwards)."""
        return self.bottom - _log_fraction(tpr, self.y_min) * (self.bottom - self.top)


def _log_fraction(value: float, low: float) -> float:
    """Where `value` sits between `low` and 1 on a log scale, as a fraction in [0, 1]."""
    if not math.isfinite(value) or value <= low:
        return 0.0
    if value >= 1.0:
        return 1.0
    return math.log10(value / low) / math.log10(1.0 / low)


def decade_ticks(low: float) -> list[float]:
    """Powers of ten within [low, 1], smallest first."""
    first = math.ceil(math.log10(low) - 1e-9)
    return [10.0**k for k in range(first, 1)]


def tick_label(value: float) -> str:
    """Rates as percentages (0.1%, 1%, 10%, 100%), the way the TPR table reads them."""
    exponent = round(math.log10(value))
    if exponent >= -5:
        return f"{value * 100:.{max(0, -exponent - 2)}f}%"
    return f"1e{exponent}"


def roc_svg(
    curves: Sequence[Curve],
    *,
    n_members: int,
    n_non_members: int,
    width: int = 720,
    height: int = 480,
) -> str:
    """The whole chart as one `<svg>` element: one `<path>` per curve, the chance diagonal,
    decade ticks and gridlines, axis titles and a legend. Text is escaped here."""
    if n_members < 2 or n_non_members < 2:
        raise ValueError("need at least two members and two non-members to draw a log axis")
    frame = LogLogFrame(
        x_min=1.0 / n_non_members,
        y_min=1.0 / n_members,
        left=64.0,
        right=width - 16.0,
        top=16.0,
        bottom=height - 52.0,
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="roc-chart" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" '
        'aria-label="ROC curves of the attacks on log-log axes">',
        "<title>ROC curves (log-log): true positive rate against false positive rate</title>",
        f'<rect class="plot-area" x="{frame.left:.1f}" y="{frame.top:.1f}" '
        f'width="{frame.right - frame.left:.1f}" height="{frame.bottom - frame.top:.1f}" '
        'fill="#fff" stroke="#8a8f98"/>',
    ]
    parts += _ticks(frame)
    parts += _axis_titles(frame, height)
    # Chance: TPR = FPR, a straight line on log-log axes, from where both axes reach it.
    start = max(frame.x_min, frame.y_min)
    parts.append(
        f'<line class="chance" x1="{frame.x(start):.1f}" y1="{frame.y(start):.1f}" '
        f'x2="{frame.x(1.0):.1f}" y2="{frame.y(1.0):.1f}" stroke="#8a8f98" '
        'stroke-dasharray="5 4"/>'
    )
    for i, curve in enumerate(curves):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<path class="roc" data-dash="{dash or "solid"}" d="{_path_data(frame, curve)}" '
            f'fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round"'
            f"{dash_attr}><title>{escape(curve.label)}</title></path>"
        )
        for fpr, tpr in _marker_points(curve, frame.x_min):
            parts.append(marker(MARKERS[i % len(MARKERS)], frame.x(fpr), frame.y(tpr), colour, i))
    parts += _legend(frame, [c.label for c in curves])
    parts.append("</svg>")
    return "".join(parts)


def _marker_points(curve: Curve, x_min: float) -> list[tuple[float, float]]:
    """The curve's TPR at each marker FPR it reaches (its best point at or below it)."""
    out = []
    for target in MARKER_FPRS:
        if target < x_min:
            continue
        best = [t for f, t in zip(curve.fpr, curve.tpr, strict=True) if f <= target * (1 + 1e-9)]
        if best:
            out.append((target, max(best)))
    return out


def marker(shape: str, x: float, y: float, colour: str, index: int, size: float = 4.5) -> str:
    """A small marker shape, offset a little per curve so identical points stay visible."""
    x += (index % 3 - 1) * 2.0
    common = f'class="marker marker-{shape}" fill="{colour}" stroke="#fff" stroke-width="0.8"'
    if shape == "square":
        return (
            f'<rect {common} x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size:.1f}" '
            f'height="{2 * size:.1f}"/>'
        )
    if shape == "triangle":
        return (
            f'<polygon {common} points="{x:.1f},{y - size * 1.2:.1f} {x - size:.1f},'
            f'{y + size * 0.8:.1f} {x + size:.1f},{y + size * 0.8:.1f}"/>'
        )
    if shape == "diamond":
        return (
            f'<polygon {common} points="{x:.1f},{y - size * 1.2:.1f} {x + size:.1f},{y:.1f} '
            f'{x:.1f},{y + size * 1.2:.1f} {x - size:.1f},{y:.1f}"/>'
        )
    if shape == "cross":
        return (
            f'<path class="marker marker-cross" d="M{x - size:.1f},{y - size:.1f} '
            f"L{x + size:.1f},{y + size:.1f} M{x - size:.1f},{y + size:.1f} "
            f'L{x + size:.1f},{y - size:.1f}" stroke="{colour}" stroke-width="2"/>'
        )
    return f'<circle {common} cx="{x:.1f}" cy="{y:.1f}" r="{size:.1f}"/>'


def _path_data(frame: LogLogFrame, curve: Curve) -> str:
    """`M x,y L x,y ...` through the clipped points, dropping repeats after clipping."""
    if len(curve.fpr) != len(curve.tpr) or not curve.fpr:
        raise ValueError(f"curve {curve.label!r}: fpr and tpr must be non-empty, equal length")
    points: list[tuple[float, float]] = []
    for fpr, tpr in zip(curve.fpr, curve.tpr, strict=True):
        point = (round(frame.x(fpr), 1), round(frame.y(tpr), 1))
        if not points or points[-1] != point:
            points.append(point)
    if len(points) == 1:
        points.append(points[0])
    head, *rest = points
    return f"M{head[0]},{head[1]} " + " ".join(f"L{x},{y}" for x, y in rest)


def _ticks(frame: LogLogFrame) -> list[str]:
    """Gridlines and labels at each power of ten on both axes."""
    out = []
    for value in decade_ticks(frame.x_min):
        x = frame.x(value)
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{frame.top:.1f}" x2="{x:.1f}" '
            f'y2="{frame.bottom + 5:.1f}" stroke="#e3e6ea"/>'
            f'<text x="{x:.1f}" y="{frame.bottom + 18:.1f}" text-anchor="middle" '
            f'font-size="11" fill="#4a505a">{tick_label(value)}</text>'
        )
    for value in decade_ticks(frame.y_min):
        y = frame.y(value)
        out.append(
            f'<line class="grid" x1="{frame.left - 5:.1f}" y1="{y:.1f}" x2="{frame.right:.1f}" '
            f'y2="{y:.1f}" stroke="#e3e6ea"/>'
            f'<text x="{frame.left - 8:.1f}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#4a505a">{tick_label(value)}</text>'
        )
    return out


def _axis_titles(frame: LogLogFrame, height: int) -> list[str]:
    middle_x = (frame.left + frame.right) / 2
    middle_y = (frame.top + frame.bottom) / 2
    return [
        f'<text x="{middle_x:.1f}" y="{height - 12}" text-anchor="middle" font-size="12" '
        'fill="#1f2329">False positive rate (non-members flagged)</text>',
        f'<text transform="translate(16 {middle_y:.1f}) rotate(-90)" text-anchor="middle" '
        'font-size="12" fill="#1f2329">True positive rate (members found)</text>',
    ]


def _legend(frame: LogLogFrame, labels: list[str]) -> list[str]:
    """Bottom-right of the plot: below the chance line, where ROC curves never go."""
    rows = [*labels, "chance (TPR = FPR)"]
    line_h, box_w = 18.0, 12 + 6.4 * max(len(label) for label in rows) + 36
    x0 = frame.right - box_w - 8
    y0 = frame.bottom - line_h * len(rows) - 12
    out = [
        f'<rect class="legend" x="{x0:.1f}" y="{y0:.1f}" width="{box_w:.1f}" '
        f'height="{line_h * len(rows) + 8:.1f}" fill="#fff" fill-opacity="0.9" '
        'stroke="#d5d9de" rx="4"/>'
    ]
    for i, label in enumerate(rows):
        y = y0 + 4 + line_h * i + line_h / 2
        chance = i == len(labels)
        colour = "#8a8f98" if chance else PALETTE[i % len(PALETTE)]
        pattern = "5 4" if chance else DASHES[i % len(DASHES)]
        dash = f' stroke-dasharray="{pattern}"' if pattern else ""
        width = 1 if chance else 2.5
        out.append(
            f'<line class="legend-line" x1="{x0 + 6:.1f}" y1="{y:.1f}" x2="{x0 + 32:.1f}" '
            f'y2="{y:.1f}" stroke="{colour}" stroke-width="{width}"{dash}/>'
            f'<text x="{x0 + 38:.1f}" y="{y + 4:.1f}" font-size="11" fill="#1f2329">'
            f"{escape(label)}</text>"
        )
        if not chance:
            out.append(marker(MARKERS[i % len(MARKERS)], x0 + 19, y, colour, 1, size=3.5))
    return out
