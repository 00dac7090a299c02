"""The model page's trend charts: one model name's audits over time, one small chart per
question (how well do attacks work, what epsilon is proven, what does the model still do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from markupsafe import Markup

from app.audits.schemas import AuditRead
from app.dashboard.chart_svg import Series, trend_svg, xy_svg
from app.dashboard.formatting import fmt_pct
from app.dashboard.summary import KeyNumbers


class _Row(Protocol):
    @property
    def audit(self) -> AuditRead: ...
    @property
    def numbers(self) -> KeyNumbers: ...


def point_label(audit: AuditRead) -> str:
    """How a point is named on the x axis: its version, else its date."""
    return f"v{audit.model.version}" if audit.model.version else f"{audit.created_at:%m-%d}"


def model_trends(rows: Sequence[_Row]) -> list[Markup]:
    """Charts over the succeeded audits in `rows` (oldest first); none when none succeeded."""
    done = [row for row in rows if row.audit.state == "succeeded"]
    if not done:
        return []
    labels = [point_label(row.audit) for row in done]
    numbers = [row.numbers for row in done]
    charts = [
        trend_svg(
            "Best attack AUC (0.5 = guessing)",
            labels,
            [Series("AUC", [row.audit.auc for row in done])],
            y_max=1.0,
            fmt=lambda v: f"{v:.2f}",
        ),
        trend_svg(
            "TPR at 0.1% FPR",
            labels,
            # An unresolved rate (fewer than 1000 non-members) is no point to plot.
            [
                Series(
                    "members found",
                    [n.tpr_at_low_fpr if n.tpr_at_low_fpr_resolved else None for n in numbers],
                )
            ],
            fmt=lambda v: fmt_pct(v),
            empty_note="unresolved: each audit had < 1,000 non-members",
        ),
        trend_svg(
            "Epsilon: lower bound vs claim",
            labels,
            [
                Series("lower bound", [row.audit.epsilon_lower_bound for row in done]),
                Series("claimed", [row.audit.claimed_epsilon for row in done], dashed=True),
            ],
        ),
        trend_svg(
            "Utility: accuracy",
            labels,
            [
                Series("members", [n.member_accuracy for n in numbers]),
                Series("non-members", [n.non_member_accuracy for n in numbers]),
            ],
            y_max=1.0,
            fmt=lambda v: f"{v * 100:.0f}%",
        ),
    ]
    tradeoff = privacy_utility(done)
    if tradeoff is not None:
        charts.append(tradeoff)
    # trend_svg escapes every piece of text it writes.
    return [Markup(chart) for chart in charts]


def privacy_utility(rows: Sequence[_Row]) -> str | None:
    """Accuracy against the claimed epsilon on a numeric epsilon axis (log when the claims
    span 20x or more): the trade-off a series of DP trainings of one model draws. None below
    two audits with claim and accuracy."""
    points = [
        (row.audit.claimed_epsilon, row.numbers.accuracy)
        for row in rows
        if row.audit.claimed_epsilon is not None
        and row.audit.claimed_epsilon > 0
        and row.numbers.accuracy is not None
    ]
    if len(points) < 2:
        return None
    return xy_svg(
        "Privacy-utility: accuracy by claimed epsilon",
        points,
        x_title="claimed ε",
        y_max=1.0,
        fmt_y=lambda v: f"{v * 100:.0f}%",
    )
