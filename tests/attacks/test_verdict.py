"""Tests for the verdict that compares every epsilon lower bound with a DP claim."""

import numpy as np
import pytest

from attacks.privacy import canary_bound, decide, family_bounds
from attacks.privacy.accounting import resolve_claim
from attacks.privacy.one_run import one_run_epsilon_lower_bound
from attacks.report import DPClaim, DPSGDParameters, EpsilonBound


def _bound(
    value: float,
    *,
    delta: float = 1e-5,
    method: str = "clopper-pearson",
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
        _bound(2.6, method="gdp", n_tests=3),
        _bound(1.1, method="one-run", source="canaries", n_tests=3),
    ]
    verdict = decide(DPClaim(epsilon=2.0), family)
    assert verdict.status == "violation"
    assert verdict.deciding_bound == "gdp on loss"
    assert verdict.gap == pytest.approx(2.0 - 2.6)
    assert verdict.n_bounds == 3 and verdict.confidence == 0.95
    assert "3 lower bound(s)" in verdict.explanation
    assert "canaries" in verdict.explanation and "Bonferroni" in verdict.explanation
    consistent = decide(DPClaim(epsilon=8.0), family)
    assert consistent.status == "consistent" and consistent.gap == pytest.approx(5.4)
    assert "not a proof of privacy" in consistent.explanation


def test_a_family_not_corrected_for_its_size_is_refused():
    with pytest.raises(ValueError, match="n_tests=2"):
        decide(DPClaim(epsilon=2.0), [_bound(0.4), _bound(2.6, method="gdp")])
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
    for text in ("3.25", "1", "95%", "1e-06", "clopper-pearson on loss"):
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


def test_a_canary_one_run_bound_joins_the_attack_family():
    """Attack bounds reserve room for the canary bound; all of them decide together."""
    rng = np.random.default_rng(0)
    scores = {"loss": (rng.normal(0.3, 1, 400), rng.normal(0, 1, 400))}
    inserted = rng.random(1000) < 0.5
    canary_scores = np.where(inserted, 3.0, 0.0) + rng.normal(0, 1, 1000)
    family = family_bounds(scores, delta=1e-5, extra_tests=1)
    canary = canary_bound(canary_scores, inserted, delta=1e-5, n_tests=len(family) + 1)
    family.append(canary)
    # Its share of the family's 95%: the one-run statistic at 1 - 0.05 / 2.
    share = one_run_epsilon_lower_bound(
        canary_scores, inserted, delta=1e-5, confidence=1 - 0.05 / 2
    )
    assert canary.value == pytest.approx(share.value) and canary.value > 1.0
    assert (canary.method, canary.source, canary.n_tests) == ("one-run", "canaries", 2)
    assert canary.n_eval_members + canary.n_eval_non_members == 1000
    verdict = decide(DPClaim(epsilon=1.0), family)
    assert verdict.status == "violation" and verdict.deciding_bound == "one-run on canaries"
    assert verdict.n_bounds == 2
