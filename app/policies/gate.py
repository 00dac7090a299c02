"""The release gate: a stored report checked against a policy, one outcome per rule.

Pure functions over the report JSON (`attacks.report.LeakageReport` dumped), so the worker can
evaluate the gate in the transaction that writes the report, and anyone can re-check it.
A rule whose quantity the audit did not measure is `not_measured` and does not fail the gate.
"""

from __future__ import annotations

from typing import Any

from app.policies.enums import GateResult, RuleStatus
from app.policies.schemas import GateReason, PolicyRules
from attacks.enums import VerdictStatus
from attacks.report import LOW_FPR


def evaluate(rules: PolicyRules, report: dict[str, Any]) -> tuple[GateResult, list[GateReason]]:
    """`fail` when any enabled rule fails; the reasons list every enabled rule."""
    reasons: list[GateReason] = []
    if rules.verdict_not_violation:
        reasons.append(_verdict(report, inconclusive=rules.inconclusive))
    if rules.no_inserted_canary_extracted:
        reasons.append(_canaries(report))
    if rules.max_auc is not None:
        reasons.append(_max_auc(report, rules.max_auc))
    if rules.max_tpr_at_0_1pct_fpr is not None:
        reasons.append(_max_tpr(report, rules.max_tpr_at_0_1pct_fpr))
    if rules.max_epsilon_lower_bound is not None:
        reasons.append(_max_epsilon(report, rules.max_epsilon_lower_bound))
    if rules.max_canary_exposure_gap is not None:
        reasons.append(_max_exposure_gap(report, rules.max_canary_exposure_gap))
    failed = any(r.status == RuleStatus.FAIL for r in reasons)
    gate = GateResult.FAIL if failed else GateResult.PASS
    return gate, reasons


def _verdict(report: dict[str, Any], *, inconclusive: GateResult) -> GateReason:
    """`violation` fails; `inconclusive` fails or passes as the policy says, with the reason."""
    verdict = report["verdict"]
    status = verdict["status"]
    if status == VerdictStatus.INCONCLUSIVE:
        outcome = RuleStatus(inconclusive)
        message = _inconclusive_message(verdict, inconclusive)
    else:
        outcome = RuleStatus.FAIL if status == VerdictStatus.VIOLATION else RuleStatus.PASS
        message = _verdict_message(verdict)
    return GateReason(
        rule="verdict_not_violation",
        status=outcome,
        measured=status,
        interval=(verdict["epsilon_lower_bound"], None)
        if verdict.get("epsilon_lower_bound") is not None
        else None,
        confidence=verdict.get("confidence"),
        limit="not violation" + ("" if inconclusive == GateResult.PASS else ", not inconclusive"),
        message=message,
    )


def _inconclusive_message(verdict: dict[str, Any], policy: GateResult) -> str:
    """Why the verdict could not be decided, and what the policy made of that."""
    why = (verdict.get("explanation") or "").strip() or "the data cannot support a verdict"
    if policy == GateResult.FAIL:
        return (
            f"verdict inconclusive: {why} The policy fails closed on inconclusive verdicts "
            "(set inconclusive to pass to release anyway; an audit split from "
            "POST /v1/audit-splits gives members and non-members a verdict can rest on)."
        )
    return f"verdict inconclusive: {why} The policy lets inconclusive verdicts pass."


def _verdict_message(verdict: dict[str, Any]) -> str:
    """One line: the verdict and the numbers behind it (the report holds the explanation)."""
    status, bound = verdict["status"], verdict.get("epsilon_lower_bound")
    if bound is None or verdict.get("claimed_epsilon") is None:
        return f"verdict {status}"
    relation = "exceeds" if status == VerdictStatus.VIOLATION else "does not exceed"
    deciding = f" ({verdict['deciding_bound']})" if verdict.get("deciding_bound") else ""
    return (
        f"verdict {status}: epsilon >= {bound:.3g}{deciding} at "
        f"{verdict['confidence'] * 100:g}% confidence {relation} the claimed "
        f"{verdict['claimed_epsilon']:.3g}"
    )


def _canaries(report: dict[str, Any]) -> GateReason:
    summary = (report.get("canaries") or {}).get("summary") or {}
    extracted = summary.get("n_extracted_inserted")
    if extracted is None:
        why = (
            "the audit used no canary set"
            if not summary
            else "audit canaries are not searched for secrets (only their one-run bound)"
        )
        return GateReason(
            rule="no_inserted_canary_extracted",
            status=RuleStatus.NOT_MEASURED,
            measured=None,
            limit=0,
            message=f"not measured: {why}",
        )
    return GateReason(
        rule="no_inserted_canary_extracted",
        status=RuleStatus.FAIL if extracted > 0 else RuleStatus.PASS,
        measured=float(extracted),
        limit=0,
        message=f"{extracted} inserted canary secret(s) extracted (limit 0)",
    )


def _max_auc(report: dict[str, Any], limit: float) -> GateReason:
    attack = max(report["attacks"], key=lambda a: a["auc"])
    ci = attack["auc_ci"]
    return GateReason(
        rule="max_auc",
        status=RuleStatus.FAIL if attack["auc"] > limit else RuleStatus.PASS,
        measured=attack["auc"],
        interval=(ci["low"], ci["high"]),
        confidence=ci["confidence"],
        limit=limit,
        attack=attack["name"],
        message=(
            f"AUC {attack['auc']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}] ({attack['name']}, "
            f"{attack['n_members']}+{attack['n_non_members']} records) "
            f"{'>' if attack['auc'] > limit else '<='} limit {limit:g}"
        ),
    )


def _max_tpr(report: dict[str, Any], limit: float) -> GateReason:
    """Highest TPR at 0.1% FPR over attacks.

    With fewer than 1000 non-members the point is unresolved: the reported TPR is taken at a
    lower FPR, so it can only understate the TPR at 0.1% FPR. Above the limit it still proves
    a failure; at or below it, nothing is known and the rule is `not_measured`.
    """
    points = [
        (attack, point)
        for attack in report["attacks"]
        for point in attack["tpr_at_fpr"]
        if abs(point["fpr"] - LOW_FPR) < 1e-12
    ]
    if not points:
        return GateReason(
            rule="max_tpr_at_0_1pct_fpr",
            status=RuleStatus.NOT_MEASURED,
            measured=None,
            limit=limit,
            message="not measured: the report has no TPR at 0.1% FPR",
        )
    attack, point = max(points, key=lambda ap: ap[1]["tpr"])
    tpr, resolved = point["tpr"], point["resolved"]
    over = tpr > limit
    status = RuleStatus.FAIL if over else (RuleStatus.PASS if resolved else RuleStatus.NOT_MEASURED)
    sample = f"{attack['n_members']}+{attack['n_non_members']} records"
    if resolved:
        note = ""
    elif over:
        note = (
            "; unresolved (under 1000 non-members): measured at a lower FPR, which can only "
            "understate the TPR at 0.1% FPR"
        )
    else:
        note = (
            f"; unresolved: {attack['n_non_members']} non-members cannot measure 0.1% FPR "
            "(needs at least 1000)"
        )
    return GateReason(
        rule="max_tpr_at_0_1pct_fpr",
        status=status,
        measured=tpr,
        interval=(point["ci_low"], point["ci_high"]),
        confidence=attack["auc_ci"]["confidence"],
        limit=limit,
        attack=attack["name"],
        message=(
            f"TPR at 0.1% FPR {tpr:.1%} [{point['ci_low']:.1%}, {point['ci_high']:.1%}] "
            f"({attack['name']}, {sample}) {'>' if over else '<='} limit {limit:g}{note}"
        ),
    )


def _max_epsilon(report: dict[str, Any], limit: float) -> GateReason:
    bound = report.get("epsilon_lower_bound")
    if bound is None:
        return GateReason(
            rule="max_epsilon_lower_bound",
            status=RuleStatus.NOT_MEASURED,
            measured=None,
            limit=limit,
            message="not measured: no attack gave an epsilon lower bound",
        )
    value = bound["value"]
    return GateReason(
        rule="max_epsilon_lower_bound",
        status=RuleStatus.FAIL if value > limit else RuleStatus.PASS,
        measured=value,
        interval=(value, None),
        confidence=bound["confidence"],
        limit=limit,
        message=(
            f"empirical epsilon >= {value:.3f} at {bound['confidence']:.0%} confidence "
            f"({bound['n_eval_members']}+{bound['n_eval_non_members']} evaluation records) "
            f"{'>' if value > limit else '<='} limit {limit:g}"
        ),
    )


def _max_exposure_gap(report: dict[str, Any], limit: float) -> GateReason:
    """Mean exposure of inserted canaries minus held-out ones (bits): how much higher the model
    ranks secrets it trained on than unseen ones, with chance (the held-out ones) subtracted."""
    summary = (report.get("canaries") or {}).get("summary") or {}
    inserted = summary.get("mean_exposure_inserted")
    held_out = summary.get("mean_exposure_held_out")
    if inserted is None or held_out is None:
        why = (
            "the audit used no canary set"
            if not summary
            else "the canary set has no exposure for both inserted and held-out canaries"
        )
        return GateReason(
            rule="max_canary_exposure_gap",
            status=RuleStatus.NOT_MEASURED,
            measured=None,
            limit=limit,
            message=f"not measured: {why}",
        )
    gap = inserted - held_out
    over = gap > limit
    return GateReason(
        rule="max_canary_exposure_gap",
        status=RuleStatus.FAIL if over else RuleStatus.PASS,
        measured=gap,
        limit=limit,
        message=(
            f"canary exposure gap {gap:.2f} bits (inserted {inserted:.2f}, held out "
            f"{held_out:.2f}; {summary.get('n_inserted', '?')}+{summary.get('n_held_out', '?')} "
            f"canaries) {'>' if over else '<='} limit {limit:g}"
        ),
    )
