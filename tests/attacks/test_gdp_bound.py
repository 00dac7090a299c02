"""Tests for the Gaussian-DP route (Nasr et al., 2023) from attack scores to epsilon."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from attacks.privacy import (
    attack_bounds,
    epsilon_from_mu,
    epsilon_lower_bound,
    family_bounds,
    methods_for,
)
from attacks.privacy.empirical import gdp_mu

DELTA = 1e-5


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0, 4.0])
def test_epsilon_from_mu_matches_dp_accountings_gaussian_mechanism(mu):
    """A Gaussian mechanism with sensitivity 1 and noise 1/mu is exactly mu-GDP."""
    from dp_accounting.pld import privacy_loss_distribution

    pld = privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=1 / mu, value_discretization_interval=1e-4
    )
    assert epsilon_from_mu(mu, DELTA) == pytest.approx(pld.get_epsilon_for_delta(DELTA), rel=2e-3)


def test_mu_from_rates_by_hand():
    # The optimal test against N(mu, 1) vs N(0, 1) at threshold mu/2 errs Phi(-mu/2) each way.
    for mu in (0.3, 1.0, 3.0):
        rate = norm.cdf(-mu / 2)
        assert gdp_mu(rate, rate) == pytest.approx(mu)
    assert gdp_mu(0.5, 0.5) == 0.0
    assert gdp_mu(0.7, 0.6) == 0.0  # worse than a coin flip shows nothing
    assert epsilon_from_mu(0.0, DELTA) == 0.0
    assert epsilon_from_mu(1e-6, DELTA) == 0.0  # too little to show at this delta


def test_the_gdp_route_needs_a_positive_delta():
    assert methods_for(0.0, gaussian=True) == ("clopper-pearson",)
    assert methods_for(DELTA, gaussian=True) == ("clopper-pearson", "gdp")
    assert methods_for(DELTA, gaussian=False) == ("clopper-pearson",)
    with pytest.raises(ValueError, match="delta > 0"):
        epsilon_lower_bound(np.ones(10), np.zeros(10), delta=0.0, method="gdp")
    with pytest.raises(ValueError, match="unknown bound method"):
        epsilon_lower_bound(np.ones(10), np.zeros(10), delta=DELTA, method="magic")


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0, 3.0])
def test_gdp_bound_stays_below_the_true_epsilon_of_a_gaussian_mechanism(mu):
    """Scores of an exactly mu-GDP mechanism (members shifted by mu): over many draws the
    95% bound may exceed the true epsilon in at most about 5% of them."""
    true_epsilon = epsilon_from_mu(mu, DELTA)
    values = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        members, non_members = rng.normal(mu, 1, 600), rng.normal(0, 1, 600)
        values.append(
            epsilon_lower_bound(members, non_members, delta=DELTA, method="gdp", seed=seed).value
        )
    exceed = np.count_nonzero(np.array(values) > true_epsilon)
    print(f"mu {mu}: true eps {true_epsilon:.2f}, max bound {max(values):.2f}, exceed {exceed}")
    assert exceed <= 3  # binomial(60, 0.05) exceeds 3 with probability < 0.35; observed 0
    assert np.median(values) > 0  # and it does see the leakage


def test_gdp_bound_is_tighter_than_clopper_pearson_on_a_strong_attack():
    rng = np.random.default_rng(3)
    members, non_members = rng.normal(4, 1, 1000), rng.normal(0, 1, 1000)
    cp, gdp = attack_bounds(
        members, non_members, source="loss", delta=DELTA, n_tests=2, gaussian=True
    )
    assert (cp.method, gdp.method) == ("clopper-pearson", "gdp")
    assert gdp.value > 2 * cp.value
    assert gdp.value < epsilon_from_mu(4, DELTA)
    # The record is self-consistent: mu from the reported rate bounds, epsilon from mu.
    details = gdp.details
    assert details["mu"] == pytest.approx(gdp_mu(details["fpr_upper"], details["fnr_upper"]))
    assert gdp.value == pytest.approx(epsilon_from_mu(details["mu"], DELTA))
    assert "Gaussian-DP" in gdp.threat_model and gdp.source == "loss"


def test_gdp_bound_sees_nothing_without_leakage():
    values = []
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        scores = rng.normal(size=1200)
        values.append(
            epsilon_lower_bound(scores[:600], scores[600:], delta=DELTA, method="gdp").value
        )
    assert np.count_nonzero(np.array(values) > 0) <= 2


def test_family_bounds_correct_for_every_bound_and_room_for_more():
    rng = np.random.default_rng(5)
    scores = {name: (rng.normal(1, 1, 300), rng.normal(0, 1, 300)) for name in ("a", "b", "c")}
    bounds = family_bounds(scores, delta=DELTA, extra_tests=1, gaussian=True)
    assert len(bounds) == 6 and {b.n_tests for b in bounds} == {7}
    assert {(b.source, b.method) for b in bounds} == {
        (s, m) for s in scores for m in ("clopper-pearson", "gdp")
    }
    pure = family_bounds(scores, delta=0.0, gaussian=True)
    assert len(pure) == 3 and {b.n_tests for b in pure} == {3}


@pytest.mark.parametrize(("q", "sigma", "steps"), [(0.05, 0.8, 10), (0.1, 2.0, 300)])
def test_gdp_route_is_sound_on_exact_dp_sgd_trade_off_curves(q, sigma, steps):
    """The Gaussian-DP assumption, checked where it matters: on the exact trade-off curve of
    DP-SGD (from dp-accounting's PLD), every point with FPR >= 1e-4 implies a mu whose epsilon
    stays below the accounted epsilon, even without any sampling error."""
    from dp_accounting.pld import privacy_loss_distribution

    pld = privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=sigma, sampling_prob=q
    ).self_compose(steps)
    true_epsilon = pld.get_epsilon_for_delta(DELTA)
    epsilons = np.linspace(0, 3 * true_epsilon + 5, 1500)
    deltas = np.array(pld.get_delta_for_epsilon(epsilons))
    worst = 0.0
    for fpr in np.logspace(-4, np.log10(0.5), 60):
        # The trade-off curve is the tightest of the (epsilon, delta(epsilon)) constraints.
        fnr = np.max(
            np.maximum(1 - deltas - np.exp(epsilons) * fpr, np.exp(-epsilons) * (1 - deltas - fpr))
        )
        worst = max(worst, epsilon_from_mu(gdp_mu(fpr, fnr), DELTA))
    assert 0.5 * true_epsilon < worst < true_epsilon


def test_gdp_route_is_kept_for_dp_sgd_claims_because_it_would_accuse_randomized_response():
    """Randomized response is exactly 1-DP yet far from a Gaussian curve: the Gaussian-DP
    statistic "proves" a much larger epsilon from it, while Clopper-Pearson stays sound. So
    without a DP-SGD claim the family holds Clopper-Pearson bounds only."""
    rng = np.random.default_rng(11)
    truthful = 1 / (1 + math.exp(-1.0))
    members = (rng.random(3000) < truthful) + rng.uniform(0, 0.1, 3000)
    non_members = (rng.random(3000) > truthful) + rng.uniform(0, 0.1, 3000)
    gdp = epsilon_lower_bound(members, non_members, delta=DELTA, method="gdp")
    assert gdp.value > 2.0
    (cp,) = family_bounds({"rr": (members, non_members)}, delta=DELTA)
    assert cp.method == "clopper-pearson" and cp.value <= 1.0
