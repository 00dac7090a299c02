"""Comparing the empirical epsilon lower bound with the owner's DP claim."""

from __future__ import annotations

from attacks.report import DPClaim, EpsilonBound, Verdict

# Relative slack when checking that the bound used (at least) the claim's delta.
_DELTA_SLACK = 1e-9


def decide(bound: EpsilonBound | None, claim: DPClaim | None) -> Verdict:
    """A violation only when the bound strictly exceeds the claimed epsilon: the bound is
    already a high-confidence statement, so anything else is consistent with the claim."""
    confidence = bound.confidence if bound else None
    value = bound.value if bound else None
    if claim is None:
        explanation = "No differential-privacy claim was given, so there is nothing to check."
        if bound is not None:
            explanation += (
                f" The attacks show epsilon >= {bound.value:.3g} "
                f"(delta = {bound.delta:.3g}, {_percent(bound.confidence)} confidence)."
            )
        return Verdict(
            status="no-claim",
            claimed_epsilon=None,
            claimed_delta=None,
            epsilon_lower_bound=value,
            confidence=confidence,
            explanation=explanation,
        )
    if bound is not None and bound.delta < claim.delta * (1 - _DELTA_SLACK):
        raise ValueError(
            f"the bound used delta = {bound.delta:g}, smaller than the claimed {claim.delta:g}: "
            "recompute it with the claim's delta"
        )

    claimed = f"(epsilon = {claim.claimed_epsilon:.3g}, delta = {claim.delta:g})"
    if claim.dp_sgd is not None and claim.accounted_epsilon == claim.epsilon:
        claimed += (
            f", from the DP-SGD parameters by the {claim.dp_sgd.accountant.upper()} accountant"
        )
    elif claim.accounted_epsilon is not None and claim.accounted_epsilon > claim.claimed_epsilon:
        claimed += (
            f"; note the DP-SGD parameters give epsilon = {claim.accounted_epsilon:.3g}, "
            "more than declared"
        )
    if bound is None:
        status = "consistent"
        explanation = f"No attack produced an epsilon lower bound, so the claim {claimed} stands."
    else:
        measured = (
            f"the attacks show epsilon >= {bound.value:.3g} "
            f"with {_percent(bound.confidence)} confidence"
        )
        if bound.value > claim.claimed_epsilon:
            status = "violation"
            explanation = f"The claim {claimed} is contradicted: {measured}."
        else:
            status = "consistent"
            explanation = (
                f"The claim {claimed} is consistent with the audit: {measured}, "
                "which does not exceed the claimed epsilon. This cannot prove the claim true."
            )
    return Verdict(
        status=status,
        claimed_epsilon=claim.claimed_epsilon,
        claimed_delta=claim.delta,
        epsilon_lower_bound=value,
        confidence=confidence,
        explanation=explanation,
    )


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"
