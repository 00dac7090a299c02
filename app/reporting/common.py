"""What every rendering states the same way: the title, TPR columns and cell texts."""

from __future__ import annotations

from app.audits.schemas import AuditRead
from app.dashboard.formatting import fmt_auc, fmt_eps, fmt_pct
from app.policies.schemas import GateReason
from attacks.report import AttackMetrics, LeakageReport

RULE_TITLES = {
    "verdict_not_violation": "verdict is not violation",
    "no_inserted_canary_extracted": "no inserted canary extracted",
    "max_auc": "maximum AUC",
    "max_tpr_at_0_1pct_fpr": "maximum TPR at 0.1% FPR",
    "max_epsilon_lower_bound": "maximum empirical epsilon",
}


def title(audit: AuditRead) -> str:
    version = f" {audit.model.version}" if audit.model.version else ""
    return f"{audit.model.name}{version}"


def gate_label(audit: AuditRead) -> str:
    return {"pass": "PASS", "fail": "FAIL"}.get(audit.gate or "", "not evaluated")


def fpr_columns(report: LeakageReport) -> list[float]:
    return sorted({p.fpr for a in report.attacks for p in a.tpr_at_fpr})


def tpr_cell(attack: AttackMetrics, fpr: float) -> str:
    """TPR with its interval; `*` marks a point too few non-members can resolve."""
    point = next((p for p in attack.tpr_at_fpr if p.fpr == fpr), None)
    if point is None:
        return "—"
    mark = "" if point.resolved else "*"
    return f"{fmt_pct(point.tpr)}{mark} [{fmt_pct(point.ci_low)}, {fmt_pct(point.ci_high)}]"


def auc_cell(attack: AttackMetrics) -> str:
    ci = attack.auc_ci
    return f"{fmt_auc(attack.auc)} [{fmt_auc(ci.low)}, {fmt_auc(ci.high)}]"


def measured_cell(reason: GateReason) -> str:
    if reason.measured is None:
        return "not measured"
    if isinstance(reason.measured, str):
        return reason.measured
    value = fmt_eps(reason.measured)
    if reason.interval is not None:
        low, high = reason.interval
        value += f" [{fmt_eps(low)}, {'∞' if high is None else fmt_eps(high)}]"
    return value


def limit_cell(reason: GateReason) -> str:
    return "—" if reason.limit is None else str(reason.limit)


def epsilon_line(report: LeakageReport) -> str | None:
    bound = report.epsilon_lower_bound
    if bound is None:
        return None
    return (
        f"empirical epsilon lower bound {fmt_eps(bound.value)} at {bound.confidence:.0%} "
        f"confidence (delta {bound.delta:g}; {bound.n_eval_members}+{bound.n_eval_non_members} "
        f"evaluation records; {bound.threat_model})"
    )
