"""Comparing one-run epsilon lower bounds with the owner's DP claim: the verdict rule.

Rule: `violation` only when a statistic proven for ONE training run (Steinke, Nasr &
Jagielski 2023 for any claim; the f-DP Gaussian audit of Mahloujifar et al. 2024 for a
DP-SGD claim) lies above the (group) claim at the family-wise confidence, over candidates
whose membership was a fair coin: audit canaries, records of a service-drawn audit split, or
pipeline-drawn records that the blind baseline cannot tell apart (assumed exchangeable).
`inconclusive` when the blind baseline tells the pipeline's members from its non-members and
nothing proven decides. Clopper-Pearson and Gaussian-DP bounds over records assume repeated
training runs; they are reported as estimates and never decide.

The deciding bounds form one Bonferroni family: each was computed at 1 - alpha / n_tests
with n_tests >= the family's size, so all hold together and their maximum may be compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from attacks.enums import VerdictStatus
from attacks.report import BlindBaseline, DPClaim, EpsilonBound, Verdict, best_epsilon_bound

# Statistics proven for one training run; only these may decide.
ONE_RUN_METHODS = ("one-run", "fdp-one-run")
# The f-DP audit assumes a Gaussian trade-off curve: sound only against a DP-SGD claim.
GAUSSIAN_METHODS = ("fdp-one-run", "gdp")

# Relative slack when checking that the bound used (at least) the claim's delta.
_DELTA_SLACK = 1e-9

_LIMITS = (
    "What this rules out: that the model is private at any epsilon below the bound. What it "
    "cannot rule out: more leakage than these attacks found. A black-box audit of a final "
    "model gives loose bounds, so 'consistent' is not a proof of privacy: a bug in DP "
    "training (a misreported sampling rate, say) can stay hidden from these attacks."
)


def group_claim(epsilon: float, delta: float, occurrences: int) -> tuple[float, float]:
    """What an (epsilon, delta) claim promises for a record occurring k times in training.

    Group privacy: k * epsilon and k * e^((k - 1) epsilon) * delta (Dwork & Roth 2014,
    Lemma 2.2 iterated); a delta of 1 or more promises nothing.
    """
    if occurrences < 1:
        raise ValueError("a record occurs at least once")
    k = occurrences
    return k * epsilon, k * math.exp((k - 1) * epsilon) * delta


def compared_claim(claim: DPClaim) -> tuple[float, float, int]:
    """The (epsilon, delta) the bounds are compared with, and the k it was grouped for."""
    k = int(getattr(claim, "max_record_occurrences", 1) or 1)
    epsilon, delta = group_claim(claim.claimed_epsilon, claim.delta, k)
    return epsilon, delta, k


def decide(
    claim: DPClaim | None,
    bounds: list[EpsilonBound],
    *,
    estimates: Sequence[EpsilonBound] = (),
    blind_baseline: BlindBaseline | None = None,
    membership_source: str | None = None,
) -> Verdict:
    """The verdict from the deciding family `bounds` (one-run statistics only).

    `estimates` are mentioned, never weighed. `blind_baseline` and `membership_source` say
    whether the audited records could have decided: a separable baseline on pipeline-drawn
    records turns an undecided audit into `inconclusive`.
    """
    for bound in bounds:
        if bound.method not in ONE_RUN_METHODS:
            raise ValueError(
                f"the {bound.method} bound from {bound.source!r} assumes repeated training "
                "runs and may not decide a verdict: report it as an estimate"
            )
        if bound.method in GAUSSIAN_METHODS and (claim is None or claim.dp_sgd is None):
            raise ValueError(
                f"the {bound.method} bound from {bound.source!r} assumes a Gaussian trade-off "
                "curve and may decide only against a DP-SGD claim"
            )
    best = best_epsilon_bound(bounds)
    tested = _what_was_tested(bounds)
    separable = (
        blind_baseline is not None
        and blind_baseline.status == "separable"
        and membership_source != "service"
    )
    evidence = sorted({_evidence(b) for b in bounds})
    common: dict[str, Any] = {
        "n_bounds": len(bounds),
        "deciding_bound": _name(best),
        "evidence": evidence,
        "epsilon_lower_bound": best.value if best else None,
        "confidence": best.confidence if best else None,
    }
    if claim is None:
        explanation = (
            f"No differential-privacy claim was given, so there is nothing to check. {tested}"
        )
        if best is not None:
            explanation += f" They show epsilon >= {best.value:.3g} ({_at(best)})."
        if separable:
            assert blind_baseline is not None
            explanation += " " + _separable(blind_baseline)
        return Verdict(
            status=VerdictStatus.NO_CLAIM,
            claimed_epsilon=None,
            claimed_delta=None,
            explanation=explanation.strip(),
            **common,
        )
    epsilon, delta, k = compared_claim(claim)
    if delta < 1:
        for bound in bounds:
            if bound.delta < delta * (1 - _DELTA_SLACK):
                raise ValueError(
                    f"the {bound.method} bound from {bound.source!r} used delta = "
                    f"{bound.delta:g}, smaller than the compared {delta:g}: recompute it "
                    "with the claim's delta"
                )

    claimed = _claimed(claim)
    if k > 1:
        claimed += (
            f"; a record may occur up to {k} times in training, so the claim is checked as "
            f"the group-privacy claim it implies for {k} records: epsilon = {epsilon:.3g}, "
            f"delta = {delta:.3g}"
        )
    status: VerdictStatus
    if delta >= 1:
        status = VerdictStatus.INCONCLUSIVE
        explanation = (
            f"The claim {claimed}. With delta at 1 or more the group claim promises nothing, "
            "so no audit can test it: remove the duplicates from training (or lower the "
            "number of occurrences declared) to get a verdict."
        )
    elif best is not None and best.value > epsilon:
        status = VerdictStatus.VIOLATION
        explanation = (
            f"The claim {claimed} is contradicted: the audit shows epsilon >= "
            f"{best.value:.3g} ({_at(best)}); {_protocol(best)}; threat model: "
            f"{best.threat_model}. {tested} A model trained as claimed would show this with "
            f"probability below {_percent(1 - best.confidence)}: check the noise, the "
            "clipping and the sampling rate of the training run."
        )
    elif separable:
        assert blind_baseline is not None
        status = VerdictStatus.INCONCLUSIVE
        explanation = f"The claim {claimed} could not be tested on the audited records. " + (
            _separable(blind_baseline)
        )
        if best is not None:
            explanation += (
                f" The proven bounds that were run ({_name(best)} and any others) show "
                f"epsilon >= {best.value:.3g}, which does not exceed the claim."
            )
    else:
        status = VerdictStatus.CONSISTENT
        if best is None:
            explanation = (
                f"No one-run statistic produced an epsilon lower bound, so the claim "
                f"{claimed} stands."
            )
        else:
            explanation = (
                f"The claim {claimed} is consistent with the audit: the audit shows epsilon "
                f">= {best.value:.3g} ({_at(best)}), which does not exceed the claimed "
                f"epsilon. {tested} {_LIMITS}"
            )
    if estimates:
        top = max(estimates, key=lambda b: b.value)
        explanation += (
            f" Estimates that assume repeated training runs (not one) and do not decide: "
            f"up to epsilon {top.value:.3g} ({top.method} on {top.source})."
        )
    return Verdict(
        status=status,
        claimed_epsilon=claim.claimed_epsilon,
        claimed_delta=claim.delta,
        explanation=explanation,
        gap=epsilon - best.value if best else None,
        max_record_occurrences=k,
        compared_epsilon=epsilon,
        compared_delta=delta,
        **common,
    )


def _claimed(claim: DPClaim) -> str:
    """The claim in words, saying where its epsilon came from (declared, or which accountant)."""
    return (
        f"(epsilon = {claim.claimed_epsilon:.3g}, delta = {claim.delta:g}, {claim.epsilon_origin})"
    )


def _separable(baseline: BlindBaseline) -> str:
    interval = ""
    if baseline.auc_ci is not None:
        interval = (
            f" ({_percent(baseline.auc_ci.confidence)} interval {baseline.auc_ci.low:.3f} to "
            f"{baseline.auc_ci.high:.3f})"
        )
    return (
        "Members and non-members can be told apart without the model: a model-free "
        f"classifier on the records alone reaches AUC {baseline.auc:.3f}{interval}. The two "
        "sets were not drawn from one distribution, so an attack on the model would measure "
        "that difference, not memorisation, and bounds on these records cannot decide. For a "
        "verdict, let leakgate draw membership (an audit split) or insert audit canaries."
    )


def _evidence(bound: EpsilonBound) -> str:
    return str(bound.details.get("evidence") or bound.source)


def _protocol(bound: EpsilonBound) -> str:
    evidence = bound.details.get("evidence")
    if evidence == "assumed-exchangeable":
        return (
            "over records the pipeline chose, assumed exchangeable (membership as if by a fair "
            "coin) because the blind baseline could not tell them apart"
        )
    if evidence == "audit-split":
        return "over records whose membership leakgate drew by a fair coin (proven protocol)"
    return "over canaries inserted at random, once each (proven protocol)"


def _what_was_tested(bounds: list[EpsilonBound]) -> str:
    if not bounds:
        return ""
    sources = sorted({b.source for b in bounds})
    methods = sorted({b.method for b in bounds})
    return (
        f"Tested: {len(bounds)} one-run lower bound(s) from {', '.join(sources)} by "
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
