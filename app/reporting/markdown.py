"""The audit as Markdown, short enough for a pull-request comment."""

from __future__ import annotations

from app.audits.schemas import AuditRead
from app.dashboard.formatting import fmt_target
from app.reporting.common import (
    RULE_TITLES,
    auc_cell,
    canary_lines,
    claim_source,
    epsilon_line,
    escape_md,
    evidence_lines,
    fpr_columns,
    gate_label,
    limit_cell,
    measured_cell,
    title,
    tpr_cell,
)
from attacks.report import LeakageReport

STATUS_MARK = {"pass": "✅ pass", "fail": "❌ fail", "not_measured": "➖ not measured"}


def render_markdown(audit: AuditRead, report: LeakageReport) -> str:
    """The model name and version are the only user-supplied text here; they are escaped."""
    verdict = report.verdict
    lines = [
        f"## leakgate: {escape_md(title(audit))} — gate {gate_label(audit)}",
        "",
        f"**Verdict: {verdict.status}** — {verdict.explanation}",
        "",
    ]
    if audit.gate_reasons:
        scope = audit.policy.scope if audit.policy else "built-in"
        lines += [
            f"Release gate ({scope} policy):",
            "",
            "| rule | result | measured | limit |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {RULE_TITLES[r.rule]} | {STATUS_MARK[r.status]} | {measured_cell(r)} | "
            f"{limit_cell(r)} |"
            for r in audit.gate_reasons
        ]
        lines += [""] + [f"- {r.message}" for r in audit.gate_reasons] + [""]
    columns = fpr_columns(report)
    first = report.attacks[0]
    lines += [
        f"Attacks on {first.n_members} members and {first.n_non_members} non-members "
        f"({first.auc_ci.confidence:.0%} intervals):",
        "",
        "| attack | AUC | " + " | ".join(f"TPR at {fmt_target(f)} FPR" for f in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    lines += [
        f"| {a.name} | {auc_cell(a)} | " + " | ".join(tpr_cell(a, f) for f in columns) + " |"
        for a in report.attacks
    ]
    if any(not p.resolved for a in report.attacks for p in a.tpr_at_fpr):
        lines += [
            "",
            "Unresolved: too few non-members to measure that FPR (it needs at least 1/FPR); "
            "no rate is given rather than a misleading 0%.",
        ]
    bound = epsilon_line(report)
    if bound:
        lines += ["", bound[0].upper() + bound[1:] + "."]
    slices = report.slices
    if slices is not None and slices.most_vulnerable_class is not None:
        worst = next(
            r
            for r in slices.results
            if r.feature == "class"
            and r.value == slices.most_vulnerable_class
            and r.attack == slices.most_vulnerable_attack
        )
        assert worst.auc is not None
        lines += [
            "",
            f"Most vulnerable class: {escape_md(worst.value)} ({worst.attack} AUC "
            f"{worst.auc:.3f} on {worst.n_members}+{worst.n_non_members} records).",
        ]
    source = claim_source(report)
    if source:
        lines += ["", f"Claimed epsilon {verdict.claimed_epsilon:.3g}: {source}."]
    lines += [line for text in evidence_lines(report) for line in ("", text)]
    if report.canaries is not None:
        summary = report.canaries.summary
        lines += [
            "",
            f"### Canaries ({summary.n_inserted} inserted, {summary.n_held_out} held out)",
        ]
        lines += [line for text in canary_lines(report) for line in ("", text)]
        if summary.one_run_bound is not None:
            one_run = summary.one_run_bound
            lines += [
                "",
                f"One-run bound from the canaries: epsilon >= {one_run.value:.3g} at "
                f"{one_run.confidence:.0%} confidence.",
            ]
    lines += ["", f"Audit `{audit.id}`."]
    return "\n".join(lines) + "\n"
