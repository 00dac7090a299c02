"""The one-run bound (Steinke et al. 2023): valid at the boundary, strong when leakage is."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attacks.privacy.one_run import (
    default_guess_counts,
    epsilon_from_guesses,
    one_run_epsilon_lower_bound,
    p_value,
)


def randomized_response_canaries(
    rng: np.random.Generator, m: int, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """The worst case for an epsilon-DP run: each canary's bit is told truly w.p. e^eps/(1+e^eps).

    A score of bit + small noise makes the top guesses exactly the canaries reported
    "inserted", so the guesses are exactly as accurate as epsilon-DP allows.
    """
    inserted = rng.random(m) < 0.5
    truthful = rng.random(m) < 1 / (1 + math.exp(-epsilon))
    reported = np.where(truthful, inserted, ~inserted)
    scores = reported.astype(float) + rng.uniform(0, 0.1, m)
    return scores, inserted


def test_bound_exceeds_true_epsilon_no_more_often_than_its_confidence_allows() -> None:
    rng = np.random.default_rng(7)
    epsilon, repetitions = 1.0, 300
    exceed = 0
    for _ in range(repetitions):
        scores, inserted = randomized_response_canaries(rng, 1000, epsilon)
        bound = one_run_epsilon_lower_bound(
            scores, inserted, delta=0.0, confidence=0.95, k_pos=100, k_neg=100
        )
        exceed += bound.value > epsilon
    # At 95% confidence at most 5% may exceed; allow binomial noise over 300 repetitions.
    assert exceed / repetitions <= 0.09


def test_bound_is_close_to_the_truth_for_the_worst_case_mechanism() -> None:
    rng = np.random.default_rng(1)
    scores, inserted = randomized_response_canaries(rng, 4000, 2.0)
    bound = one_run_epsilon_lower_bound(scores, inserted, delta=0.0, confidence=0.95)
    assert 1.2 < bound.value <= 2.0 + 0.3
    assert bound.n_tests > 1 and bound.n_canaries == 4000


def test_perfect_separation_gives_a_large_bound_and_random_scores_none() -> None:
    rng = np.random.default_rng(3)
    inserted = rng.random(1000) < 0.5
    leaky = inserted.astype(float) + rng.uniform(0, 0.5, 1000)
    strong = one_run_epsilon_lower_bound(leaky, inserted, delta=1e-5)
    assert strong.value > 3.0
    assert strong.n_correct == strong.n_guesses

    noise = rng.normal(size=1000)
    assert one_run_epsilon_lower_bound(noise, inserted, delta=1e-5).value < 0.5


def test_delta_is_accounted_and_only_lowers_the_bound() -> None:
    values = [
        epsilon_from_guesses(m=1000, r=200, v=180, delta=d, confidence=0.95)
        for d in (0.0, 1e-6, 1e-4, 1e-3)
    ]
    assert values == sorted(values, reverse=True)
    assert values[0] > values[-1]


def test_p_value_matches_the_binomial_tail_without_delta() -> None:
    from scipy.stats import binom

    q = 1 / (1 + math.exp(-0.5))
    assert p_value(m=500, r=100, v=70, epsilon=0.5, delta=0.0) == pytest.approx(
        binom.sf(69, 100, q)
    )
    assert p_value(m=500, r=100, v=70, epsilon=0.5, delta=1e-3) > binom.sf(69, 100, q)


def test_choosing_among_guess_sets_costs_confidence() -> None:
    rng = np.random.default_rng(5)
    scores, inserted = randomized_response_canaries(rng, 2000, 3.0)
    fixed = one_run_epsilon_lower_bound(scores, inserted, delta=0.0, k_pos=200, k_neg=200)
    searched = one_run_epsilon_lower_bound(scores, inserted, delta=0.0)
    n_sets = len(default_guess_counts(len(scores)))
    assert fixed.n_tests == 1 and searched.n_tests == n_sets == 12
    same_k = epsilon_from_guesses(
        m=2000, r=400, v=fixed.n_correct, delta=0.0, confidence=1 - 0.05 / n_sets
    )
    assert same_k < fixed.value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k_pos": 10}, "both"),
        ({"k_pos": 600, "k_neg": 600}, "k_pos"),
        ({"delta": 1.0}, "delta"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    scores, inserted = np.arange(1000.0), np.arange(1000) % 2 == 0
    kwargs = {"delta": 1e-5, **kwargs}
    with pytest.raises(ValueError, match=message):
        one_run_epsilon_lower_bound(scores, inserted, **kwargs)
