"""What every rendering states the same way: the title, TPR columns and cell texts."""

from __future__ import annotations

from app.audits.schemas import AuditRead
from app.dashboard.formatting import fmt_auc, fmt_eps, fmt_pct
from app.policies.schemas import GateReason
from attacks.report import AttackMetrics, LeakageReport

# Records at risk a rendering lists (dashboard page and HTML report alike): the spec's default
# `records_at_risk`, so by default every stored record shows; the JSON and CSV hold them all.
RECORDS_SHOWN = 20

RULE_TITLES = {
    "verdict_not_violation": "verdict is not violation",
    "no_inserted_canary_extracted": "no inserted canary extracted",
    "max_auc": "maximum AUC",
    "max_tpr_at_0_1pct_fpr": "maximum TPR at 0.1% FPR",
    "max_epsilon_lower_bound": "maximum empirical epsilon",
}


# Characters that mean something inside a line of Markdown (GFM): emphasis, code, links,
# table cells, a heading's closing #s, inline HTML and entities. Line starts cannot occur:
# line breaks are folded first.
_MD_SPECIAL = set("\\`*_[]#|<>~&")


def escape_md(text: str) -> str:
    """User-supplied text as literal Markdown inline text: every special character
    backslash-escaped and line breaks folded, so a model name or version cannot start a
    heading, a table row, a link or HTML in a pull-request comment."""
    flat = " ".join(text.splitlines())
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in flat)


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


# How each rule's numbers read: AUC to 3 decimals, rates as percentages, counts as integers.
_FORMATS = {
    "max_auc": fmt_auc,
    "max_tpr_at_0_1pct_fpr": fmt_pct,
    "max_epsilon_lower_bound": fmt_eps,
    "no_inserted_canary_extracted": lambda v: f"{v:g}",
}


def _number(reason: GateReason, value: float | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return _FORMATS.get(reason.rule, fmt_eps)(value)


def measured_cell(reason: GateReason) -> str:
    """The measured value with its interval (`∞`: a one-sided lower bound)."""
    if reason.measured is None:
        return "not measured"
    value = _number(reason, reason.measured)
    if reason.interval is not None and not isinstance(reason.measured, str):
        low, high = reason.interval
        value += f" [{_number(reason, low)}, {'∞' if high is None else _number(reason, high)}]"
    return value


def limit_cell(reason: GateReason) -> str:
    return _number(reason, reason.limit)


def epsilon_line(report: LeakageReport) -> str | None:
    bound = report.epsilon_lower_bound
    if bound is None:
        return None
    return (
        f"empirical epsilon lower bound {fmt_eps(bound.value)} at {bound.confidence:.0%} "
        f"confidence (delta {bound.delta:g}; {bound.n_eval_members}+{bound.n_eval_non_members} "
        f"evaluation records; {bound.threat_model})"
    )


def evidence_lines(report: LeakageReport) -> list[str]:
    """Data checks, the blind baseline and the estimates, one plain sentence each: what the
    dashboard, the Markdown and the HTML report all show before trusting any bound."""
    lines = []
    checks = report.data_checks
    if checks is not None:
        lines.append(
            f"Data checks: {checks.duplicate_members.count} duplicate member(s), "
            f"{checks.duplicate_non_members.count} duplicate non-member(s), "
            f"{checks.in_both.count} text(s) in both sets; the statistics used "
            f"{checks.n_members} members and {checks.n_non_members} non-members."
        )
    baseline = report.blind_baseline
    if baseline is not None:
        if baseline.auc is None or baseline.auc_ci is None:
            lines.append(f"Blind baseline (no model): skipped, {baseline.note}.")
        else:
            ci = baseline.auc_ci
            told = (
                "the records alone tell members from non-members"
                if baseline.status == "separable"
                else "the records alone do not tell members from non-members"
            )
            lines.append(
                f"Blind baseline (no model): AUC {fmt_auc(baseline.auc)} "
                f"[{fmt_auc(ci.low)}, {fmt_auc(ci.high)}] at {ci.confidence:.0%}: {told}."
            )
    if report.epsilon_estimates:
        parts = ", ".join(
            f"{e.source} ({e.method}) ε ≥ {fmt_eps(e.value)}"
            for e in sorted(report.epsilon_estimates, key=lambda e: -e.value)
        )
        lines.append(
            f"Estimates (assume repeated training runs; they never decide the verdict): {parts}."
        )
    return lines
