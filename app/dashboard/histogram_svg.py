"""Server-side SVG of one attack's score histogram: members against non-members.

Where the two distributions overlap, the attack guesses; where members stand apart (usually
the right tail), it finds them. Each group is drawn as its share per bin, so a 300-member /
3000-non-member audit still compares shapes. Built like `roc_svg`: one escaped string.
"""

from __future__ import annotations

from html import escape

from app.dashboard.chart_svg import FONT, GRID, INK, MUTED, linear_ticks, nice_max
from attacks.report import ScoreHistogram

MEMBER, NON_MEMBER = "#D55E00", "#0072B2"


def _tick(value: float) -> str:
    return f"{value:.3g}"


def histogram_svg(hist: ScoreHistogram, *, width: int = 360, height: int = 220) -> str:
    """Members as filled orange bars, non-members as a blue outline step line over them."""
    n_bins = len(hist.members)
    if n_bins == 0 or len(hist.edges) != n_bins + 1 or len(hist.non_members) != n_bins:
        raise ValueError(f"histogram of {hist.attack!r}: edges and counts do not match")
    left, right, top, bottom = 44.0, width - 10.0, 40.0, height - 40.0
    total_m, total_n = max(sum(hist.members), 1), max(sum(hist.non_members), 1)
    members = [c / total_m for c in hist.members]
    non_members = [c / total_n for c in hist.non_members]
    high = nice_max(max(members + non_members + [0.01]) * 1.05)
    step = (right - left) / n_bins

    def y(share: float) -> float:
        return bottom - min(share, high) / high * (bottom - top)

    title = f"{hist.attack}: scores of members and non-members"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="histogram-chart" '
        f'data-attack="{escape(hist.attack)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" {FONT} aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="14" font-size="13" font-weight="600" fill="{INK}">'
        f"{escape(hist.attack)}</text>",
    ]
    for tick in linear_ticks(high, count=4):
        parts.append(
            f'<line class="grid" x1="{left:.1f}" y1="{y(tick):.1f}" x2="{right:.1f}" '
            f'y2="{y(tick):.1f}" stroke="{GRID}"/><text x="{left - 5:.1f}" '
            f'y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10" fill="{MUTED}">'
            f"{tick * 100:.0f}%</text>"
        )
    for i, share in enumerate(members):
        if share > 0:
            parts.append(
                f'<rect class="bin member" x="{left + i * step + 0.5:.1f}" y="{y(share):.1f}" '
                f'width="{max(step - 1, 0.5):.1f}" height="{bottom - y(share):.1f}" '
                f'fill="{MEMBER}" fill-opacity="0.55"><title>members '
                f"{_tick(hist.edges[i])} to {_tick(hist.edges[i + 1])}: {hist.members[i]}"
                "</title></rect>"
            )
    path = [f"M{left:.1f},{bottom:.1f}"]
    for i, share in enumerate(non_members):
        path.append(
            f"L{left + i * step:.1f},{y(share):.1f} L{left + (i + 1) * step:.1f},{y(share):.1f}"
        )
    path.append(f"L{right:.1f},{bottom:.1f}")
    parts.append(
        f'<path class="non-member" d="{" ".join(path)}" fill="none" stroke="{NON_MEMBER}" '
        'stroke-width="2"/>'
    )
    for value, anchor, x in ((hist.edges[0], "start", left), (hist.edges[-1], "end", right)):
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 14:.1f}" text-anchor="{anchor}" font-size="10" '
            f'fill="{MUTED}">{escape(_tick(value))}</text>'
        )
    parts.append(
        f'<text x="{(left + right) / 2:.1f}" y="{height - 8}" text-anchor="middle" '
        f'font-size="11" fill="{INK}">score (higher: more likely a member)'
        f"{'*' if hist.clipped else ''}<title>the end bins include the tails</title></text>"
    )
    parts.append(
        f'<rect x="{left:.1f}" y="22" width="12" height="9" fill="{MEMBER}" '
        f'fill-opacity="0.55"/><text x="{left + 16:.1f}" y="31" font-size="10" fill="{INK}">'
        f'members ({sum(hist.members):,})</text><line x1="{left + 130:.1f}" y1="27" '
        f'x2="{left + 146:.1f}" y2="27" stroke="{NON_MEMBER}" stroke-width="2"/>'
        f'<text x="{left + 150:.1f}" y="31" font-size="10" fill="{INK}">non-members '
        f"({sum(hist.non_members):,})</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
