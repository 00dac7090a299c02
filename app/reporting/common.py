"""What every rendering states the same way: the title, TPR columns and cell texts."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from app.audits.schemas import AuditRead
from app.policies.schemas import GateReason
from app.presentation.formatting import fmt_auc, fmt_eps, fmt_pct
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
    "max_canary_exposure_gap": "maximum canary exposure gap (bits)",
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


def unresolved_text(fpr: float) -> str:
    """What an unmeasurable rate is called instead of a number: FPR f needs 1/f non-members."""
    return f"unresolved (< {math.ceil(1 / fpr - 1e-9):,} non-members)"


def tpr_cell(attack: AttackMetrics, fpr: float) -> str:
    """TPR with its interval, or "unresolved" where too few non-members measure that FPR
    (a 0.0% there is an artefact of the sample size, not a result)."""
    point = next((p for p in attack.tpr_at_fpr if p.fpr == fpr), None)
    if point is None:
        return "—"
    if not point.resolved:
        return unresolved_text(fpr)
    return f"{fmt_pct(point.tpr)} [{fmt_pct(point.ci_low)}, {fmt_pct(point.ci_high)}]"


def claim_source(report: LeakageReport) -> str | None:
    """Where the checked epsilon comes from, plainly: the owner's word or an accountant."""
    if report.dp_claim is None:
        return None
    return report.dp_claim.epsilon_origin


def _canary_summary(report: LeakageReport) -> dict[str, Any]:
    """The canary summary as a dict, read defensively (older reports, other shapes)."""
    canaries: Any = getattr(report, "canaries", None)
    if isinstance(canaries, BaseModel):
        canaries = canaries.model_dump(mode="json")
    summary = canaries.get("summary") if isinstance(canaries, dict) else None
    return summary if isinstance(summary, dict) else {}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def canary_gap(report: LeakageReport) -> float | None:
    """Mean exposure of inserted canaries minus held-out ones, in bits (None: not measured)."""
    summary = _canary_summary(report)
    inserted = _num(summary.get("mean_exposure_inserted"))
    held_out = _num(summary.get("mean_exposure_held_out"))
    if inserted is None or held_out is None:
        return None
    return inserted - held_out


# Below this gap (bits) inserted canaries rank like held-out ones: nothing is memorised.
GAP_NONE_BITS = 1.0
# From this gap on, the model ranks its planted secrets more than 2^5 = 32 times above chance.
GAP_STRONG_BITS = 5.0


def canary_lines(report: LeakageReport) -> list[str]:
    """The canary results in words: what the exposure gap and the extractions mean."""
    summary = _canary_summary(report)
    if not summary:
        return []
    lines = []
    gap = canary_gap(report)
    if gap is None:
        lines.append("Exposure was not measured for these canaries.")
    else:
        head = (
            f"Exposure gap {gap:+.2f} bits: inserted canaries average "
            f"{summary['mean_exposure_inserted']:.2f} bits, held-out ones "
            f"{summary['mean_exposure_held_out']:.2f} bits (what chance gives)."
        )
        if gap < GAP_NONE_BITS:
            meaning = (
                "No sign of memorisation: the model ranks the secrets it trained on no higher "
                "than ones it never saw."
            )
        elif gap < GAP_STRONG_BITS:
            meaning = (
                f"Some memorisation: the model ranks the secrets it trained on about "
                f"{2**gap:.0f} times higher than unseen ones."
            )
        else:
            meaning = (
                f"Strong memorisation: the model ranks the secrets it trained on about "
                f"{2**gap:,.0f} times higher than unseen ones; an attacker who knows the "
                "template can guess them far faster than by brute force."
            )
        space = _num(summary.get("candidate_space"))
        if space and space > 1:
            meaning += (
                f" Full memorisation would be {math.log2(space):.1f} bits (the secret ranked "
                f"first of {space:,.0f})."
            )
        lines.append(f"{head} {meaning}")
    extracted, inserted = summary.get("n_extracted_inserted"), summary.get("n_inserted")
    if isinstance(extracted, int) and isinstance(inserted, int):
        held, n_held = summary.get("n_extracted_held_out"), summary.get("n_held_out")
        lines.append(
            f"Extraction: {extracted} of {inserted} inserted canaries recovered"
            + (f", {held} of {n_held} held out (chance)" if isinstance(held, int) else "")
            + (
                "; a recovered inserted secret is a leak anyone with the model can reproduce."
                if extracted
                else "."
            )
        )
    return lines


def auc_cell(attack: AttackMetrics) -> str:
    ci = attack.auc_ci
    return f"{fmt_auc(attack.auc)} [{fmt_auc(ci.low)}, {fmt_auc(ci.high)}]"


# How each rule's numbers read: AUC to 3 decimals, rates as percentages, counts as integers.
_FORMATS = {
    "max_auc": fmt_auc,
    "max_tpr_at_0_1pct_fpr": fmt_pct,
    "max_epsilon_lower_bound": fmt_eps,
    "no_inserted_canary_extracted": lambda v: f"{v:g}",
    "max_canary_exposure_gap": lambda v: f"{v:.2f} bits",
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
    if report.membership_source is not None:
        lines.append(
            "Membership source: drawn by leakgate's own coin (an audit split), the proven protocol."
            if report.membership_source == "service"
            else "Membership source: the pipeline chose members and non-members; bounds over "
            "records assume they were drawn alike (the blind baseline checks this)."
        )
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
