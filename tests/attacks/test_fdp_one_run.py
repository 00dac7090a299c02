"""The f-DP one-run audit (Gaussian trade-off) against jax_privacy's published numbers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from attacks.privacy.empirical import epsilon_from_mu
from attacks.privacy.fdp_one_run import fdp_one_run_bound, mu_lower_bound


def _deterministic_normal(mean: float, n: int) -> np.ndarray:
    """N(mean, 1) quantiles at the midpoints of n equal cells, as jax_privacy's test builds."""
    return norm.ppf(np.linspace(0, 1, n, endpoint=False) + 1 / (2 * n)) + mean


# google-deepmind/jax_privacy, tests/auditing_test.py, test_epsilon_one_run_close
# (commit 8967688c26d46f3b74bfdfe61ef1f984b887abab): 10,000 in- and 10,000 out-canaries,
# significance 0.05, delta 1e-6, default (Bonferroni over the ROC hull) thresholds.
JAX_PRIVACY_FDP = [(0, 0.0), (1, 2.164749), (2, 4.7218075), (4, 9.133752)]


@pytest.mark.parametrize(("shift", "expected"), JAX_PRIVACY_FDP)
def test_reproduces_jax_privacy_on_shifted_normals(shift, expected):
    bound = fdp_one_run_bound(
        _deterministic_normal(shift, 10_000),
        _deterministic_normal(0, 10_000),
        delta=1e-6,
        confidence=0.95,
        threshold_rule="hull",
    )
    assert bound.epsilon == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert bound.epsilon == pytest.approx(epsilon_from_mu(bound.mu, 1e-6)) or bound.mu == 0


def test_more_confidence_or_fewer_correct_guesses_give_a_smaller_mu():
    base = mu_lower_bound(m=1000, k=100, v=90, confidence=0.95)
    assert base > 0
    assert mu_lower_bound(m=1000, k=100, v=90, confidence=0.999) < base
    assert mu_lower_bound(m=1000, k=100, v=70, confidence=0.95) < base
    assert mu_lower_bound(m=1000, k=100, v=50, confidence=0.95) == 0.0


def test_grid_rule_breaks_ties_without_looking_at_membership():
    """All scores equal: whatever order the arrays come in, nothing can be rejected."""
    bound = fdp_one_run_bound(np.zeros(500), np.zeros(500), delta=1e-5)
    assert bound.mu == 0.0 and bound.epsilon == 0.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="delta"):
        fdp_one_run_bound(np.ones(3), np.zeros(3), delta=0.0)
    with pytest.raises(ValueError, match="NaN"):
        fdp_one_run_bound(np.array([np.nan, 1.0]), np.zeros(3), delta=1e-5)
    with pytest.raises(ValueError, match="threshold rule"):
        fdp_one_run_bound(np.ones(3), np.zeros(3), delta=1e-5, threshold_rule="all")
