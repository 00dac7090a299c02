"""Jinja filters that format report numbers the same way on every dashboard page.

Kept apart from the routes so that the rounding rules (AUC to 3 decimals, rates as percentages,
epsilon to 2–3 decimals) are stated once and can be tested without rendering a page.
"""

from __future__ import annotations

from datetime import UTC, datetime

MISSING = "—"


def fmt_auc(value: float | None) -> str:
    """AUC to 3 decimals: the bootstrap CI is rarely narrower than that."""
    return MISSING if value is None else f"{value:.3f}"


def fmt_pct(value: float | None) -> str:
    """A rate in [0, 1] as a percentage; tiny non-zero rates keep two significant digits."""
    if value is None:
        return MISSING
    percent = value * 100
    if percent == 0 or percent >= 0.1:
        return f"{percent:.1f}%"
    return f"{percent:.2g}%"


def fmt_target(value: float) -> str:
    """A target rate such as an FPR column heading: exact, so 0.1 reads `10%`, not `10.0%`."""
    return f"{value * 100:g}%"


def fmt_eps(value: float | None) -> str:
    """Epsilon with 3 decimals below 1 (where differences matter most), 2 above."""
    if value is None:
        return MISSING
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def fmt_sci(value: float | None) -> str:
    """Small probabilities such as delta: `1e-5` rather than `0.00001` or `1e-05`."""
    if value is None:
        return MISSING
    text = f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def fmt_count(value: int | None) -> str:
    """Counts with thousands separators."""
    return MISSING if value is None else f"{value:,}"


def fmt_seconds(value: float | None) -> str:
    """Durations: milliseconds below a second, then seconds, then minutes."""
    if value is None:
        return MISSING
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def as_utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def fmt_when(value: datetime | None) -> str:
    """A timestamp in UTC to the second, the zone spelled out."""
    return MISSING if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_iso(value: datetime | None) -> str:
    """Machine-readable timestamp for `<time datetime=...>`."""
    return "" if value is None else as_utc(value).isoformat()


FILTERS = {
    "auc": fmt_auc,
    "pct": fmt_pct,
    "target": fmt_target,
    "eps": fmt_eps,
    "sci": fmt_sci,
    "count": fmt_count,
    "seconds": fmt_seconds,
    "when": fmt_when,
    "iso": fmt_iso,
}
