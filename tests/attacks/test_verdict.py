"""Tests for the verdict: one-run bounds decide, estimates never do, group claims, inconclusive."""

import numpy as np
import pytest

from attacks.privacy import decide, family_bounds
from attacks.privacy.accounting import resolve_claim
from attacks.privacy.one_run import one_run_epsilon_lower_bound
from attacks.privacy.one_run_family import steinke_bound
from attacks.privacy.verdict import group_claim
from attacks.report import BlindBaseline, DPClaim, DPSGDParameters, EpsilonBound, Interval


def _bound(
    value: float,
    *,
    delta: float = 1e-5,
    method: str = "one-run",
    source: str = "loss",
    n_tests: int = 1,
    confidence: float = 0.95,
) -> EpsilonBound:
    return EpsilonBound(
        method=method,
        source=source,
        value=value,
        confidence=confidence,
        delta=delta,
        n_tests=n_tests,
        n_eval_members=10,
        n_eval_non_members=10,
        threat_model="t",
    )


def test_violation_only_when_a_bound_strictly_exceeds_claim():
    assert decide(DPClaim(epsilon=2.0), [_bound(2.5)]).status == "violation"
    assert decide(DPClaim(epsilon=2.0), [_bound(2.0)]).status == "consistent"
    assert decide(DPClaim(epsilon=0.5), [_bound(0.0)]).status == "consistent"
    assert decide(DPClaim(epsilon=0.5), []).status == "consistent"


def test_the_largest_bound_of_the_family_decides_and_the_gap_is_reported():
    family = [
        _bound(0.4, n_tests=3),
        _bound(2.6, method="fdp-one-run", n_tests=3),
        _bound(1.1, method="one-run", source="canaries", n_tests=3),
    ]
    verdict = decide(DPClaim(epsilon=2.0, dp_sgd=_DP_SGD, accounted_epsilon=2.0), family)
    assert verdict.status == "violation"
    assert verdict.deciding_bound == "fdp-one-run on loss"
    assert verdict.gap == pytest.approx(2.0 - 2.6)
    assert verdict.n_bounds == 3 and verdict.confidence == 0.95
    assert "3 one-run lower bound(s)" in verdict.explanation
    assert "canaries" in verdict.explanation and "Bonferroni" in verdict.explanation
    consistent = decide(DPClaim(epsilon=8.0, dp_sgd=_DP_SGD, accounted_epsilon=8.0), family)
    assert consistent.status == "consistent" and consistent.gap == pytest.approx(5.4)
    assert "not a proof of privacy" in consistent.explanation


def test_a_family_not_corrected_for_its_size_is_refused():
    with pytest.raises(ValueError, match="n_tests=2"):
        decide(DPClaim(epsilon=2.0), [_bound(0.4), _bound(2.6, source="canaries")])
    with pytest.raises(ValueError, match="confidence"):
        decide(
            DPClaim(epsilon=2.0),
            [_bound(0.4, n_tests=2), _bound(0.1, n_tests=2, confidence=0.99)],
        )


def test_no_claim():
    verdict = decide(None, [_bound(1.2)])
    assert verdict.status == "no-claim"
    assert verdict.claimed_epsilon is None and verdict.epsilon_lower_bound == 1.2
    assert verdict.gap is None
    assert decide(None, []).status == "no-claim"


def test_explanation_names_the_numbers():
    verdict = decide(DPClaim(epsilon=1.0, delta=1e-6), [_bound(3.25, delta=1e-6)])
    assert verdict.status == "violation"
    for text in ("3.25", "1", "95%", "1e-06", "one-run on loss"):
        assert text in verdict.explanation
    assert (verdict.claimed_epsilon, verdict.claimed_delta) == (1.0, 1e-6)
    assert (verdict.epsilon_lower_bound, verdict.confidence) == (3.25, 0.95)


def test_an_accounted_claim_names_its_accountants():
    claim = resolve_claim(
        epsilon=None,
        delta=1e-5,
        dp_sgd=DPSGDParameters(noise_multiplier=1.1, sample_rate=0.02, epochs=5),
    )
    explanation = decide(claim, [_bound(0.1)]).explanation
    assert claim.accountant in explanation
    assert all(a.accountant in explanation for a in claim.accountants)


def test_bound_with_a_smaller_delta_than_claimed_is_refused():
    with pytest.raises(ValueError, match="delta"):
        decide(DPClaim(epsilon=1.0, delta=1e-5), [_bound(3.0, delta=1e-7)])


def test_a_canary_one_run_bound_decides_at_its_share_of_the_confidence():
    rng = np.random.default_rng(0)
    inserted = rng.random(1000) < 0.5
    canary_scores = np.where(inserted, 3.0, 0.0) + rng.normal(0, 1, 1000)
    canary = steinke_bound(
        canary_scores,
        inserted,
        delta=1e-5,
        confidence=0.95,
        n_tests=2,
        source="canaries",
        evidence="canaries",
    )
    family = [_bound(0.3, n_tests=2), canary]
    # Its share of the family's 95%: the one-run statistic at 1 - 0.05 / 2.
    share = one_run_epsilon_lower_bound(
        canary_scores, inserted, delta=1e-5, confidence=1 - 0.05 / 2
    )
    assert canary.value == pytest.approx(share.value) and canary.value > 1.0
    assert canary.n_eval_members + canary.n_eval_non_members == 1000
    verdict = decide(DPClaim(epsilon=1.0), family)
    assert verdict.status == "violation" and verdict.deciding_bound == "one-run on canaries"
    assert "canaries inserted at random" in verdict.explanation
    assert verdict.evidence == ["canaries", "loss"]


_DP_SGD = {"noise_multiplier": 1.0, "sample_rate": 0.01, "steps": 100}


def test_estimates_never_decide_and_are_named_as_such():
    rng = np.random.default_rng(0)
    estimates = family_bounds({"loss": (rng.normal(3, 1, 400), rng.normal(0, 1, 400))}, delta=1e-5)
    assert estimates[0].value > 1.0
    with pytest.raises(ValueError, match="repeated training runs"):
        decide(DPClaim(epsilon=1.0), estimates)
    verdict = decide(DPClaim(epsilon=1.0), [_bound(0.2)], estimates=estimates)
    assert verdict.status == "consistent"
    assert "repeated training runs" in verdict.explanation


def test_the_gaussian_one_run_bound_decides_only_a_dp_sgd_claim():
    with pytest.raises(ValueError, match="DP-SGD"):
        decide(DPClaim(epsilon=1.0), [_bound(2.0, method="fdp-one-run")])


def _baseline(status: str) -> BlindBaseline:
    return BlindBaseline(
        status=status, auc=0.7, auc_ci=Interval(low=0.65, high=0.75, confidence=0.95)
    )


def test_a_separable_blind_baseline_makes_an_undecided_audit_inconclusive():
    separable = _baseline("separable")
    verdict = decide(DPClaim(epsilon=1.0), [], blind_baseline=separable)
    assert verdict.status == "inconclusive"
    assert "told apart without the model" in verdict.explanation and "0.700" in verdict.explanation
    # A proven bound above the claim still decides (canaries).
    canary = _bound(3.0, source="canaries")
    assert decide(DPClaim(epsilon=1.0), [canary], blind_baseline=separable).status == "violation"
    # Membership drawn by the service: the baseline cannot void it.
    assert (
        decide(
            DPClaim(epsilon=1.0),
            [_bound(0.5)],
            blind_baseline=separable,
            membership_source="service",
        ).status
        == "consistent"
    )
    assert decide(DPClaim(epsilon=1.0), [], blind_baseline=_baseline("not-separable")).status == (
        "consistent"
    )


def test_group_privacy_turns_the_claim_into_a_group_claim():
    assert group_claim(1.0, 1e-5, 1) == (1.0, 1e-5)
    epsilon, delta = group_claim(1.0, 1e-5, 3)
    assert epsilon == 3.0 and delta == pytest.approx(3 * np.exp(2.0) * 1e-5)
    claim = DPClaim(epsilon=1.0, max_record_occurrences=2)
    grouped_delta = group_claim(1.0, 1e-5, 2)[1]
    verdict = decide(claim, [_bound(1.5, delta=grouped_delta)])
    assert verdict.status == "consistent"
    assert (verdict.compared_epsilon, verdict.max_record_occurrences) == (2.0, 2)
    assert "group-privacy claim" in verdict.explanation
    assert decide(claim, [_bound(2.5, delta=grouped_delta)]).status == "violation"
    vacuous = DPClaim(epsilon=5.0, delta=0.01, max_record_occurrences=10)
    assert decide(vacuous, []).status == "inconclusive"
