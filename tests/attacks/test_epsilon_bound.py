"""Tests for Clopper–Pearson intervals and the empirical epsilon lower bound."""

import itertools
import math

import numpy as np
import pytest
from scipy.stats import beta, binomtest

from attacks.privacy import (
    clopper_pearson,
    clopper_pearson_upper,
    epsilon_from_rates,
    epsilon_lower_bound,
)

CASES = [(0, 10), (1, 10), (5, 10), (10, 10), (3, 1000), (0, 1), (1, 1), (997, 1000)]


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_clopper_pearson_matches_beta_quantiles(k, n, confidence):
    alpha = 1 - confidence
    expected_low = 0.0 if k == 0 else beta(k, n - k + 1).ppf(alpha / 2)
    expected_high = 1.0 if k == n else beta(k + 1, n - k).ppf(1 - alpha / 2)
    low, high = clopper_pearson(k, n, confidence)
    assert low == pytest.approx(expected_low, abs=1e-12)
    assert high == pytest.approx(expected_high, abs=1e-12)


@pytest.mark.parametrize(("k", "n"), CASES)
def test_clopper_pearson_matches_scipy_binomtest(k, n):
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    low, high = clopper_pearson(k, n, 0.95)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


def test_clopper_pearson_upper_is_one_sided():
    # With no successes, P(K = 0) = (1 - p)^n = alpha at the bound: p = 1 - alpha^(1/n).
    assert clopper_pearson_upper(0, 50, 0.95) == pytest.approx(1 - 0.05 ** (1 / 50))
    assert clopper_pearson_upper(7, 7, 0.95) == 1.0
    # The one-sided 95% bound is the upper end of the two-sided 90% interval.
    assert clopper_pearson_upper(4, 40, 0.95) == pytest.approx(clopper_pearson(4, 40, 0.90)[1])


def test_clopper_pearson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        clopper_pearson(5, 4, 0.95)
    with pytest.raises(ValueError):
        clopper_pearson(0, 0, 0.95)


def test_epsilon_from_rates_by_hand():
    # 10 false positives of 1000 non-members, 300 false negatives of 1000 members.
    fpr, fnr, delta = 10 / 1000, 300 / 1000, 1e-5
    expected = max(math.log((1 - delta - fnr) / fpr), math.log((1 - delta - fpr) / fnr))
    assert expected == pytest.approx(math.log(0.69999 / 0.01))
    assert epsilon_from_rates(fpr, fnr, delta) == pytest.approx(expected)
    # Symmetric errors: both terms equal.
    assert epsilon_from_rates(0.1, 0.1, 0.0) == pytest.approx(math.log(0.9 / 0.1))
    # The second term wins when false negatives are rarer.
    assert epsilon_from_rates(0.4, 0.02, 0.0) == pytest.approx(math.log(0.6 / 0.02))


def test_epsilon_from_rates_is_never_negative():
    assert epsilon_from_rates(0.5, 0.5, 0.0) == 0.0  # a coin flip shows nothing
    assert epsilon_from_rates(0.7, 0.6, 1e-5) == 0.0  # worse than a coin flip
    assert epsilon_from_rates(1.0, 1.0, 0.0) == 0.0
    assert epsilon_from_rates(0.0, 0.0, 0.0) == 0.0  # no division by zero
    # delta eats the numerator: (1 - 0.5 - 0.5) = 0 is not a valid term.
    assert epsilon_from_rates(0.01, 0.5, 0.5) == 0.0


def test_no_leakage_gives_no_bound_across_seeds():
    values = []
    for seed in range(50):
        rng = np.random.default_rng(1000 + seed)
        scores = rng.normal(size=4000)  # one distribution for both groups
        bound = epsilon_lower_bound(scores[:2000], scores[2000:], delta=1e-5, seed=seed)
        values.append(bound.value)
    values = np.array(values)
    assert np.count_nonzero(values > 1.0) <= 1
    # A valid 95% bound exceeds the true epsilon (0 here) in at most about 5% of runs.
    assert np.count_nonzero(values > 0) <= 5
    assert np.median(values) < 0.1


def test_randomized_response_bound_never_exceeds_its_epsilon():
    """Randomized response with epsilon = 1 is exactly 1-DP per record: the bound must stay
    below 1 (at 95% confidence) yet come close to it with many records."""
    epsilon = 1.0
    keep = math.exp(epsilon) / (1 + math.exp(epsilon))
    values = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        members = (rng.random(20_000) < keep).astype(float)
        non_members = (rng.random(20_000) < 1 - keep).astype(float)
        values.append(epsilon_lower_bound(members, non_members, delta=0.0, seed=seed).value)
    assert max(values) <= epsilon
    assert min(values) > 0.8


def test_perfect_separation_bound_matches_closed_form_and_grows_with_n():
    delta = 1e-5
    values = []
    for n in (50, 500, 5000):
        bound = epsilon_lower_bound(np.ones(n), np.zeros(n), delta=delta, seed=0)
        assert bound.details["false_positives"] == bound.details["false_negatives"] == 0
        # One-sided CP upper bound for 0 errors in m trials at level a: 1 - a^(1/m).
        a = 0.05 / 2
        fpr_hi = 1 - a ** (1 / bound.n_eval_non_members)
        fnr_hi = 1 - a ** (1 / bound.n_eval_members)
        expected = max(
            math.log((1 - delta - fnr_hi) / fpr_hi), math.log((1 - delta - fpr_hi) / fnr_hi)
        )
        assert bound.value == pytest.approx(expected)
        assert bound.value > 0
        values.append(bound.value)
    assert values[0] < values[1] < values[2]


def _overlapping(seed: int, n: int = 3000):
    rng = np.random.default_rng(seed)
    return rng.normal(1.5, 1, n), rng.normal(0, 1, n)


def test_bound_respects_n_tests():
    members, non_members = _overlapping(7)
    values = [
        epsilon_lower_bound(members, non_members, delta=1e-5, n_tests=k, seed=3).value
        for k in (1, 2, 5, 20)
    ]
    assert values[0] > 0
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[-1] < values[0]
    # Correcting for 2 tests at 95% is the same as one test at 97.5%.
    two_tests = epsilon_lower_bound(members, non_members, delta=1e-5, n_tests=2, seed=3)
    one_strict = epsilon_lower_bound(members, non_members, delta=1e-5, confidence=0.975, seed=3)
    assert two_tests.value == pytest.approx(one_strict.value)


def test_bound_record_is_self_consistent():
    members, non_members = _overlapping(8, n=1001)
    bound = epsilon_lower_bound(members, non_members, delta=1e-5, n_tests=3, seed=1)
    level = 1 - 0.05 / (2 * 3)
    details = bound.details
    assert bound.n_eval_members + 1001 // 2 == 1001
    assert bound.n_eval_non_members + 1001 // 2 == 1001
    assert details["fpr_upper"] == pytest.approx(
        beta(
            details["false_positives"] + 1, bound.n_eval_non_members - details["false_positives"]
        ).ppf(level)
    )
    assert details["fnr_upper"] == pytest.approx(
        beta(details["false_negatives"] + 1, bound.n_eval_members - details["false_negatives"]).ppf(
            level
        )
    )
    terms = {
        "low-fpr": math.log((1 - 1e-5 - details["fnr_upper"]) / details["fpr_upper"]),
        "low-fnr": math.log((1 - 1e-5 - details["fpr_upper"]) / details["fnr_upper"]),
    }
    assert bound.value == pytest.approx(max(terms.values()))
    assert details["direction"] == max(terms, key=terms.get)
    # Re-count the errors at the reported threshold over all records: evaluation-half counts
    # must be part of them.
    assert details["false_positives"] <= np.count_nonzero(non_members >= details["threshold"])
    assert details["false_negatives"] <= np.count_nonzero(members < details["threshold"])
    assert (bound.confidence, bound.delta, bound.n_tests) == (0.95, 1e-5, 3)
    assert "fair coin" in bound.threat_model


def test_bound_is_deterministic_per_seed():
    members, non_members = _overlapping(9, n=20_000)
    first = epsilon_lower_bound(members, non_members, delta=1e-5, seed=4)
    again = epsilon_lower_bound(members, non_members, delta=1e-5, seed=4)
    assert first == again


def test_bound_rejects_bad_input():
    with pytest.raises(ValueError):
        epsilon_lower_bound(np.array([1.0]), np.array([0.0, 1.0]), delta=1e-5)
    with pytest.raises(ValueError):
        epsilon_lower_bound(np.array([1.0, np.inf]), np.array([0.0, 1.0]), delta=1e-5)
    with pytest.raises(ValueError):
        epsilon_lower_bound(np.ones(4), np.zeros(4), delta=1e-5, n_tests=0)
