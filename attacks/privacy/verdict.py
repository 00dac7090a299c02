"""Comparing every empirical epsilon lower bound with the owner's DP claim.

The bounds form one Bonferroni family (attacks x statistics, plus any canary bound): each was
computed at 1 - alpha / n_tests with n_tests >= the family's size, so all hold together with
the stated confidence and their maximum may be compared with the claim.
"""

from __future__ import annotations

from typing import Literal

from attacks.report import DPClaim, EpsilonBound, Verdict, best_epsilon_bound

# Relative slack when checking that the bound used (at least) the claim's delta.
_DELTA_SLACK = 1e-9

_LIMITS = (
    "What this rules out: that the model is private at any epsilon below the bound. What it "
    "cannot rule out: more leakage than these attacks found. A black-box audit of a final "
    "model gives loose bounds, so 'consistent' is not a proof of privacy: a bug in DP "
    "training (a misreported sampling rate, say) can stay hidden from these attacks."
)


def decide(claim: DPClaim | None, bounds: list[EpsilonBound]) -> Verdict:
    """`violation` only when some bound strictly exceeds the claimed epsilon.

    Each bound is already a statement at the family-wise confidence, so anything short of
    exceeding the claim is consistent with it.
    """
    best = best_epsilon_bound(bounds)
    tested = _what_was_tested(bounds)
    if claim is None:
        explanation = (
            f"No differential-privacy claim was given, so there is nothing to check. {tested}"
        )
        if best is not None:
            explanation += f" They show epsilon >= {best.value:.3g} ({_at(best)})."
        return Verdict(
            status="no-claim",
            claimed_epsilon=None,
            claimed_delta=None,
            epsilon_lower_bound=best.value if best else None,
            confidence=best.confidence if best else None,
            explanation=explanation,
            n_bounds=len(bounds),
            deciding_bound=_name(best),
        )
    for bound in bounds:
        if bound.delta < claim.delta * (1 - _DELTA_SLACK):
            raise ValueError(
                f"the {bound.method} bound from {bound.source!r} used delta = {bound.delta:g}, "
                f"smaller than the claimed {claim.delta:g}: recompute it with the claim's delta"
            )

    claimed = f"(epsilon = {claim.claimed_epsilon:.3g}, delta = {claim.delta:g})"
    if claim.dp_sgd is not None and claim.accounted_epsilon == claim.epsilon:
        claimed += f", from the DP-SGD parameters by the {claim.accountant} accountant"
        if len(claim.accountants) > 1:
            claimed += (
                " (the tightest of "
                + ", ".join(
                    f"{a.accountant} {a.epsilon:.3g}" for a in claim.accountants if a.epsilon
                )
                + ")"
            )
    elif claim.accounted_epsilon is not None and claim.accounted_epsilon > claim.claimed_epsilon:
        claimed += (
            f"; note the DP-SGD parameters give epsilon = {claim.accounted_epsilon:.3g} "
            f"({claim.accountant}), more than declared"
        )
    status: Literal["consistent", "violation"]
    if best is None:
        status = "consistent"
        explanation = f"No attack produced an epsilon lower bound, so the claim {claimed} stands."
    else:
        measured = f"the audit shows epsilon >= {best.value:.3g} ({_at(best)})"
        if best.value > claim.claimed_epsilon:
            status = "violation"
            explanation = (
                f"The claim {claimed} is contradicted: {measured}; threat model: "
                f"{best.threat_model}. {tested} A model trained "
                "as claimed would show this with probability below "
                f"{_percent(1 - best.confidence)}: check the noise, the clipping and the "
                "sampling rate of the training run."
            )
        else:
            status = "consistent"
            explanation = (
                f"The claim {claimed} is consistent with the audit: {measured}, which does "
                f"not exceed the claimed epsilon. {tested} {_LIMITS}"
            )
    return Verdict(
        status=status,
        claimed_epsilon=claim.claimed_epsilon,
        claimed_delta=claim.delta,
        epsilon_lower_bound=best.value if best else None,
        confidence=best.confidence if best else None,
        explanation=explanation,
        gap=claim.claimed_epsilon - best.value if best else None,
        n_bounds=len(bounds),
        deciding_bound=_name(best),
    )


def _what_was_tested(bounds: list[EpsilonBound]) -> str:
    if not bounds:
        return ""
    sources = sorted({b.source for b in bounds})
    methods = sorted({b.method for b in bounds})
    return (
        f"Tested: {len(bounds)} lower bound(s) from {', '.join(sources)} by "
        f"{', '.join(methods)}, all holding together at {_percent(bounds[0].confidence)} "
        "confidence (Bonferroni over all of them)."
    )


def _at(bound: EpsilonBound) -> str:
    return (
        f"{bound.method} on {bound.source}, {_percent(bound.confidence)} confidence, "
        f"delta = {bound.delta:g}"
    )


def _name(bound: EpsilonBound | None) -> str | None:
    return f"{bound.method} on {bound.source}" if bound else None


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"
