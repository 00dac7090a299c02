"""Rich rendering of a finished audit for the terminal, and the CLI's exit codes."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from app.audits.enums import AuditState
from app.policies.enums import GateResult, RuleStatus
from attacks.enums import VerdictStatus

EXIT_OK = 0  # consistent or no claim; with --gate: the gate passed
EXIT_VIOLATION = 1  # the verdict is violation; with --gate: the gate failed
EXIT_FAILED = 2  # the audit failed or was cancelled, or the server was unreachable
EXIT_USAGE = 3  # bad arguments, or input the server refused (4xx)
EXIT_INCONCLUSIVE = 4  # the verdict is inconclusive (without --gate): not a pass, not a violation
EXIT_PENDING = 5  # `status` only: the audit has not ended yet

EXIT_CODES_HELP = (
    "Exit codes: 0 consistent or no claim (with --gate: gate passed); 1 violation (with --gate: "
    "gate failed); 2 audit failed or cancelled, or server unreachable; 3 usage error (bad "
    "arguments, or input the server refused with a 4xx); 4 inconclusive verdict, without "
    "--gate (with --gate the policy's `inconclusive` rule decides 0 or 1); 5 (status only) "
    "not finished yet."
)


def exit_code(audit: dict[str, Any], *, gate: bool = False) -> int:
    """By the verdict, or with `gate` by the release gate of the audit's policy."""
    if audit["state"] != AuditState.SUCCEEDED:
        return EXIT_FAILED
    if gate:  # fails closed: an audit whose gate was not evaluated does not pass
        return EXIT_OK if audit.get("gate") == GateResult.PASS else EXIT_VIOLATION
    verdict = audit.get("verdict")
    if verdict == VerdictStatus.VIOLATION:
        return EXIT_VIOLATION
    # Non-zero so that a script testing for success fails closed, distinct from a violation.
    return EXIT_INCONCLUSIVE if verdict == VerdictStatus.INCONCLUSIVE else EXIT_OK


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def print_summary(console: Console, audit: dict[str, Any], report: dict[str, Any] | None) -> None:
    if audit["state"] != AuditState.SUCCEEDED or report is None:
        reason = audit.get("error") or audit.get("stage")
        console.print(f"[bold red]audit {audit['id']} {audit['state']}[/]: {reason}")
        return
    table = Table(
        title=f"leakage of {audit['model']['name']} {audit['model'].get('version') or ''}"
    )
    table.add_column("attack", no_wrap=True)
    table.add_column("AUC [95% CI]", no_wrap=True)
    for fpr in ("0.1%", "1%", "10%"):
        table.add_column(f"TPR at\n{fpr} FPR", justify="right")
    table.add_column("adv.", justify="right")
    table.add_column("refs", justify="right")
    for attack in report["attacks"]:
        tprs = {round(p["fpr"], 6): p for p in attack["tpr_at_fpr"]}

        def cell(fpr: float, tprs=tprs) -> str:
            p = tprs.get(fpr)
            if p is None:
                return "-"
            # An unresolved rate is an artefact of the sample size: said so, not a 0.0%.
            return _pct(p["tpr"]) if p["resolved"] else "unresolved"

        ci = attack["auc_ci"]
        table.add_row(
            attack["name"],
            f"{attack['auc']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]",
            cell(0.001),
            cell(0.01),
            cell(0.1),
            f"{attack['advantage']:.3f}",
            str(attack.get("n_reference_models") or "-"),
        )
    console.print(table)
    first = report["attacks"][0]
    console.print(f"{first['n_members']} members, {first['n_non_members']} non-members")
    if any(not p["resolved"] for a in report["attacks"] for p in a["tpr_at_fpr"]):
        console.print(
            "[dim]unresolved: fewer non-members than 1/FPR (0.1% FPR needs 1,000) cannot "
            "measure that rate[/]"
        )
    bound = report.get("epsilon_lower_bound")
    if bound:
        console.print(
            f"empirical epsilon lower bound: [bold]{bound['value']:.3f}[/] at "
            f"{bound['confidence']:.0%} confidence ({bound['method']} on {bound['source']}, "
            f"the largest of {len(report['epsilon_bounds'])}; delta {bound['delta']:g}; "
            f"{bound['n_eval_members']}+{bound['n_eval_non_members']} evaluation records; "
            f"{bound['threat_model']})"
        )
    at_risk = report.get("records_at_risk") or []
    if at_risk:
        shown = ", ".join(
            f"{r['record_id']} ({_pct(r['flagged_at_fpr'])} FPR)" for r in at_risk[:5]
        )
        console.print(
            f"records at risk (by {at_risk[0]['attack']}, flagged at the FPR shown): {shown}"
            + (f" and {len(at_risk) - 5} more (records.csv)" if len(at_risk) > 5 else "")
        )
    utility = report.get("utility")
    if utility:
        line = (
            f"accuracy: members {_pct(utility['member_accuracy'])}, "
            f"non-members {_pct(utility['non_member_accuracy'])}"
        )
        ci = utility.get("accuracy_ci")
        if ci:
            line += (
                f"; on {utility['n_evaluated']} {utility['evaluated_on']} records "
                f"{_pct(utility['accuracy'])} [{_pct(ci['low'])}, {_pct(ci['high'])}]"
            )
        console.print(line)
    verdict = report["verdict"]
    colour = {VerdictStatus.VIOLATION: "red", VerdictStatus.CONSISTENT: "green"}.get(
        verdict["status"], "yellow"
    )
    console.print(f"verdict: [bold {colour}]{verdict['status']}[/] — {verdict['explanation']}")
    print_gate(console, audit)


def print_gate(console: Console, audit: dict[str, Any]) -> None:
    """The gate and one line per rule of the audit's policy."""
    if audit.get("gate") is None:
        return
    scope = (audit.get("policy") or {}).get("scope", "built-in")
    colour = "green" if audit["gate"] == GateResult.PASS else "red"
    console.print(f"release gate ({scope} policy): [bold {colour}]{audit['gate']}[/]")
    marks = {
        RuleStatus.PASS: "[green]pass[/]",
        RuleStatus.FAIL: "[red]FAIL[/]",
        RuleStatus.NOT_MEASURED: "[dim]n/m[/]",
    }
    for reason in audit.get("gate_reasons") or []:
        console.print(f"  {marks[reason['status']]}  {reason['rule']}: {reason['message']}")
