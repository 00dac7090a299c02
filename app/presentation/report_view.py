"""What the report page shows, computed from a validated `LeakageReport`.

Templates only lay things out; the choices (which TPR columns exist, which attack gave the
epsilon bound, whether a footnote is needed, the ROC chart) are made here, in typed Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from pydantic import BaseModel

from app.dashboard.summary import LOW_FPR
from app.presentation.chart_svg import BoundBar, epsilon_svg
from app.presentation.formatting import fmt_auc, fmt_eps, fmt_pct
from app.presentation.histogram_svg import histogram_svg
from app.presentation.roc_svg import Curve, roc_svg
from app.reporting.common import (
    RECORDS_SHOWN,
    canary_lines,
    claim_source,
    evidence_lines,
    unresolved_text,
)
from attacks.report import (
    AttackMetrics,
    EpsilonBound,
    LeakageReport,
    RecordAtRisk,
    SliceMetrics,
    TprAtFpr,
)


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
    headline: str
    epsilon_chart: Markup | None
    canaries: CanaryView | None
    evidence: list[str]
    histograms: list[Markup]
    slices: SlicesView | None
    claim_source: str | None
    canary_lines: list[str]


@dataclass(frozen=True)
class SliceRow:
    """One slice (a class, or correct/incorrect predictions) with a cell per attack."""

    feature: str
    value: str
    n_members: int
    n_non_members: int
    cells: list[SliceMetrics | None]
    most_vulnerable: bool


@dataclass(frozen=True)
class SlicesView:
    """The slices table: attacks as columns, slices as rows, the worst class marked."""

    attacks: list[str]
    rows: list[SliceRow]
    min_records: int
    most_vulnerable_class: str | None
    most_vulnerable_attack: str | None
    note: str


def slices_view(report: LeakageReport) -> SlicesView | None:
    """Group the report's slice metrics into rows; None when the report has no slices."""
    slices = report.slices
    if slices is None or not slices.results:
        return None
    attacks = list(dict.fromkeys(r.attack for r in slices.results))
    keyed: dict[tuple[str, str], dict[str, SliceMetrics]] = {}
    for result in slices.results:
        keyed.setdefault((result.feature, result.value), {})[result.attack] = result
    rows = []
    for (feature, value), by_attack in keyed.items():
        first = next(iter(by_attack.values()))
        rows.append(
            SliceRow(
                feature=feature,
                value=value,
                n_members=first.n_members,
                n_non_members=first.n_non_members,
                cells=[by_attack.get(name) for name in attacks],
                most_vulnerable=feature == "class" and value == slices.most_vulnerable_class,
            )
        )
    note = ""
    if slices.n_classes > slices.n_classes_sliced:
        note = (
            f"The {slices.n_classes_sliced} largest of {slices.n_classes} classes are shown; "
            "the rest are in no slice."
        )
    return SlicesView(
        attacks=attacks,
        rows=rows,
        min_records=slices.min_records,
        most_vulnerable_class=slices.most_vulnerable_class,
        most_vulnerable_attack=slices.most_vulnerable_attack,
        note=note,
    )


@dataclass(frozen=True)
class CanaryView:
    """The canary part of a report as plain dicts, read defensively (see `canary_view`)."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]]


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
        chart=roc_chart(report.attacks),
        timings_total=sum(report.timings.values()),
        show_reference_models=any(a.n_reference_models for a in report.attacks),
        records_shown=report.records_at_risk[:RECORDS_SHOWN],
        headline=plain_verdict(report),
        epsilon_chart=epsilon_chart(report),
        canaries=canary_view(report),
        evidence=evidence_lines(report),
        # histogram_svg escapes every piece of text it writes.
        histograms=[Markup(histogram_svg(h)) for h in report.score_histograms],
        slices=slices_view(report),
        claim_source=claim_source(report),
        canary_lines=canary_lines(report),
    )


def epsilon_bounds(report: LeakageReport) -> list[BoundBar]:
    """Every empirical lower bound in the report, largest first.

    The one place that reads bounds out of the report schema, so that a schema listing
    bounds by method changes this function only.
    """
    bars = [
        BoundBar(
            label=f"{bound.source} ({bound.method})",
            value=bound.value,
            confidence=bound.confidence,
        )
        for bound in report.epsilon_bounds
    ]
    return sorted(bars, key=lambda bar: -bar.value)


def epsilon_chart(report: LeakageReport) -> Markup | None:
    """Claimed epsilon against every lower bound (the dashboard and the HTML report), or None
    when no attack gave a bound."""
    bars = epsilon_bounds(report)
    if not bars:
        return None
    # epsilon_svg escapes every piece of text it writes.
    return Markup(epsilon_svg(bars, claimed=report.verdict.claimed_epsilon))


def plain_verdict(report: LeakageReport) -> str:
    """The verdict and the strongest attack's result in a few sentences without jargon."""
    verdict = report.verdict
    bars = epsilon_bounds(report)
    best = bars[0] if bars else None
    claim = f"ε = {fmt_eps(verdict.claimed_epsilon)}"
    if verdict.status == "no-claim":
        first = "No privacy claim was given, so there is nothing to confirm or refute."
    elif verdict.status == "inconclusive":
        first = f"The claim {claim} could not be tested: {verdict.explanation.split('. ', 1)[-1]}"
    elif best is None:
        first = f"No attack produced a lower bound on ε, so nothing contradicts the claim {claim}."
    elif verdict.status == "violation":
        first = (
            f"The model leaks more than its privacy claim allows. It claims {claim}, but the "
            f"{best.label} attack proves ε is at least {fmt_eps(best.value)} with "
            f"{best.confidence * 100:g}% confidence, so the claim cannot hold."
        )
    else:
        first = (
            f"Nothing measured contradicts the claim {claim}: the strongest evidence, "
            f"ε ≥ {fmt_eps(best.value)}, stays below it. An audit can disprove a claim, never "
            "prove it."
        )
    if not report.attacks:
        return first
    strongest = max(report.attacks, key=lambda a: a.auc)
    point = next((p for p in strongest.tpr_at_fpr if abs(p.fpr - LOW_FPR) < 1e-12), None)
    if point is None:
        low = "its rate at 0.1% false positives was not measured"
    elif not point.resolved:
        low = (
            f"its rate at 0.1% false positives is {unresolved_text(point.fpr)}: "
            f"{strongest.n_non_members:,} non-members are too few to measure it"
        )
    else:
        low = f"it finds {fmt_pct(point.tpr)} of members while flagging 0.1% of non-members"
    return (
        f"{first} The strongest attack, {strongest.name}, tells members from non-members with "
        f"AUC {fmt_auc(strongest.auc)} (0.5 is guessing); {low}."
    )


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value if isinstance(value, dict) else {}


def canary_view(report: LeakageReport) -> CanaryView | None:
    """The report's canaries (`summary` and `canaries` list) when it has any, else None.

    Read by name rather than by type: the canary schema is added to the report separately.
    """
    canaries = _as_dict(getattr(report, "canaries", None))
    if not canaries:
        return None
    rows = [_as_dict(row) for row in canaries.get("canaries") or []]
    return CanaryView(summary=_as_dict(canaries.get("summary")), rows=[r for r in rows if r])


def roc_chart(attacks: list[AttackMetrics]) -> Markup | None:
    """The ROC chart (the dashboard and the HTML report), or None when there is nothing a
    log axis can show."""
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
