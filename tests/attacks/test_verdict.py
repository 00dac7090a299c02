"""Tests for the verdict that compares the epsilon lower bound with a DP claim."""

import pytest

from attacks.privacy import decide
from attacks.report import DPClaim, EpsilonBound


def _bound(value: float, delta: float = 1e-5) -> EpsilonBound:
    return EpsilonBound(
        value=value,
        confidence=0.95,
        delta=delta,
        method="m",
        threshold=0.0,
        direction="low-fpr",
        n_eval_members=10,
        n_eval_non_members=10,
        false_positives=0,
        false_negatives=0,
        fpr_upper=0.3,
        fnr_upper=0.3,
        n_tests=1,
        threat_model="t",
    )


def test_violation_only_when_bound_strictly_exceeds_claim():
    assert decide(_bound(2.5), DPClaim(epsilon=2.0)).status == "violation"
    assert decide(_bound(2.0), DPClaim(epsilon=2.0)).status == "consistent"
    assert decide(_bound(0.0), DPClaim(epsilon=0.5)).status == "consistent"
    assert decide(None, DPClaim(epsilon=0.5)).status == "consistent"


def test_no_claim():
    verdict = decide(_bound(1.2), None)
    assert verdict.status == "no-claim"
    assert verdict.claimed_epsilon is None and verdict.epsilon_lower_bound == 1.2
    assert decide(None, None).status == "no-claim"


def test_explanation_names_the_numbers():
    verdict = decide(_bound(3.25), DPClaim(epsilon=1.0, delta=1e-6))
    assert verdict.status == "violation"
    for text in ("3.25", "1", "95%", "1e-06"):
        assert text in verdict.explanation
    assert (verdict.claimed_epsilon, verdict.claimed_delta) == (1.0, 1e-6)
    assert (verdict.epsilon_lower_bound, verdict.confidence) == (3.25, 0.95)


def test_bound_with_a_smaller_delta_than_claimed_is_refused():
    with pytest.raises(ValueError, match="delta"):
        decide(_bound(3.0, delta=1e-7), DPClaim(epsilon=1.0, delta=1e-5))
