"""What the report page shows, computed from a validated `LeakageReport`.

Templates only lay things out; the choices (which TPR columns exist, which attack gave the
epsilon bound, whether a footnote is needed, the ROC chart) are made here, in typed Python.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from app.dashboard.formatting import fmt_auc
from app.dashboard.roc_svg import Curve, roc_svg
from attacks.report import AttackMetrics, EpsilonBound, LeakageReport, RecordAtRisk, TprAtFpr

# A page, not a data export: the full list is in the report JSON.
RECORDS_SHOWN = 50


@dataclass(frozen=True)
class AttackRow:
    """One row of the attack table: the metrics plus TPR cells aligned to the shared columns."""

    attack: AttackMetrics
    cells: list[TprAtFpr | None]


@dataclass(frozen=True)
class ReportView:
    """Everything the report section of the detail page needs."""

    report: LeakageReport
    fpr_columns: list[float]
    rows: list[AttackRow]
    has_unresolved: bool
    ci_percent: str
    bound_attack: str | None
    bounds: list[tuple[str, EpsilonBound]]
    chart: Markup | None
    timings_total: float
    show_reference_models: bool
    records_shown: list[RecordAtRisk]


def build_report_view(report: LeakageReport) -> ReportView:
    """Align the attacks' TPR points on one set of FPR columns and draw their ROC curves."""
    fpr_columns = sorted({point.fpr for a in report.attacks for point in a.tpr_at_fpr})
    rows = []
    for attack in report.attacks:
        by_fpr = {point.fpr: point for point in attack.tpr_at_fpr}
        rows.append(AttackRow(attack=attack, cells=[by_fpr.get(fpr) for fpr in fpr_columns]))
    confidences = {a.auc_ci.confidence for a in report.attacks}
    ci_percent = f"{confidences.pop() * 100:g}%" if len(confidences) == 1 else ""
    best = report.epsilon_lower_bound
    bound_attack = f"{best.source} ({best.method})" if best else None
    return ReportView(
        report=report,
        fpr_columns=fpr_columns,
        rows=rows,
        has_unresolved=any(not p.resolved for a in report.attacks for p in a.tpr_at_fpr),
        ci_percent=ci_percent,
        bound_attack=bound_attack,
        bounds=[
            (f"{b.source} ({b.method})", b)
            for b in sorted(report.epsilon_bounds, key=lambda b: -b.value)
        ],
        chart=_chart(report.attacks),
        timings_total=sum(report.timings.values()),
        show_reference_models=any(a.n_reference_models for a in report.attacks),
        records_shown=report.records_at_risk[:RECORDS_SHOWN],
    )


def _chart(attacks: list[AttackMetrics]) -> Markup | None:
    """The ROC chart, or None when there is nothing a log axis can show."""
    if not attacks:
        return None
    n_members = max(a.n_members for a in attacks)
    n_non_members = max(a.n_non_members for a in attacks)
    if n_members < 2 or n_non_members < 2:
        return None
    curves = [
        Curve(label=f"{a.name} (AUC {fmt_auc(a.auc)})", fpr=a.roc.fpr, tpr=a.roc.tpr)
        for a in attacks
    ]
    # roc_svg escapes every piece of text it writes, so its output is safe to embed.
    return Markup(roc_svg(curves, n_members=n_members, n_non_members=n_non_members))
