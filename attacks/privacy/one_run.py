"""Epsilon lower bound from one training run (Steinke, Nasr & Jagielski, NeurIPS 2023).

Each of m canaries was included in training independently with probability 1/2. The auditor
guesses "inserted" for the k+ highest scores and "held out" for the k- lowest, abstaining on
the rest. If training is (epsilon, delta)-DP, the number of correct guesses W among the
r = k+ + k- guesses satisfies (the paper's main theorem)

    P[W >= v] <= f(v) + 2 m delta * max_{i >= 1} (f(v - i) - f(v)) / i,

with f(v) = P[Binomial(r, e^eps / (1 + e^eps)) >= v]. The bound is the largest epsilon that
this p-value still rejects at the stated confidence. Abstaining is what makes one run enough:
only the canaries the model is most (or least) sure about are judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom

METHOD = "one-run (Steinke, Nasr & Jagielski 2023): top-k+ / bottom-k- guesses on canaries"
THREAT_MODEL = (
    "canaries inserted independently with probability 1/2; black-box scores of the final "
    "model; a guess set fixed before looking at which canaries were inserted"
)
# Epsilon beyond which the bound is reported as this cap (e^40 odds are already certainty).
_MAX_EPSILON = 40.0


@dataclass(frozen=True)
class OneRunBound:
    """The one-run bound with the counts behind it, so anyone can recompute it."""

    value: float
    confidence: float
    delta: float
    k_pos: int
    k_neg: int
    n_guesses: int
    n_correct: int
    n_canaries: int
    n_tests: int
    method: str = METHOD
    threat_model: str = THREAT_MODEL


def p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Probability of at least v correct guesses out of r under an (epsilon, delta)-DP run.

    The delta term is the paper's: delta is not ignored, it weighs how much probability mass
    a DP failure may move from fewer to more correct guesses.
    """
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError("need epsilon >= 0 and delta in [0, 1]")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    # f(v - i) for i = 0..v: tail probabilities of Binomial(r, q).
    tails = binom.sf(v - 1 - np.arange(v + 1), r, q)
    f_v = float(tails[0])
    if v == 0 or delta == 0:
        return min(1.0, f_v)
    steps = np.arange(1, v + 1)
    slack = float(np.max((tails[1:] - f_v) / steps))
    return min(1.0, f_v + 2 * m * delta * slack)


def epsilon_from_guesses(*, m: int, r: int, v: int, delta: float, confidence: float) -> float:
    """The largest epsilon whose p-value for (r guesses, v correct) is at most 1 - confidence."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
    alpha = 1 - confidence

    def excess(epsilon: float) -> float:
        return p_value(m=m, r=r, v=v, epsilon=epsilon, delta=delta) - alpha

    if r == 0 or excess(0.0) >= 0:
        return 0.0
    if excess(_MAX_EPSILON) < 0:
        return _MAX_EPSILON
    return float(brentq(excess, 0.0, _MAX_EPSILON, xtol=1e-6))


def default_guess_counts(m: int) -> list[tuple[int, int]]:
    """The guess sets tried by default (each costs a share of the confidence).

    Strong leakage is best shown with few, confident guesses; weak leakage needs many. Each
    size is tried on both tails (k+ = k-) and on each tail alone: a model that memorises fits
    its members and most non-members alike, so its leak often sits in one tail only (the
    mislabelled non-members it gets wrong), which a two-tailed set dilutes. Any guess set
    fixed before looking at membership is valid for the theorem.
    """
    sizes = sorted({max(1, round(m * share)) for share in (0.02, 0.05, 0.1, 0.2)})
    both = [(k, k) for k in sizes if 2 * k <= m]
    one_tail = [(k, 0) for k in sizes if k <= m] + [(0, k) for k in sizes if k <= m]
    return both + one_tail


def one_run_epsilon_lower_bound(
    scores: np.ndarray,
    inserted: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    k_pos: int | None = None,
    k_neg: int | None = None,
) -> OneRunBound:
    """The one-run bound from canary scores (higher score = more likely inserted).

    With k_pos and k_neg given, that one guess set is judged. Without them, the guess sets of
    `default_guess_counts` are all judged at confidence 1 - (1 - confidence) / n and the
    largest bound is kept: Bonferroni, so picking the best does not inflate it.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(inserted, dtype=bool).ravel()
    if values.shape != truth.shape:
        raise ValueError("scores and inserted must have the same length")
    if values.size < 2:
        raise ValueError("need at least two canaries")
    if not np.all(np.isfinite(values)):
        raise ValueError("canary scores contain NaN or infinite values")
    if not 0 <= delta < 1:
        raise ValueError("delta must lie in [0, 1)")
    m = values.size
    if (k_pos is None) != (k_neg is None):
        raise ValueError("give both k_pos and k_neg, or neither")
    if k_pos is not None and k_neg is not None:
        if k_pos < 0 or k_neg < 0 or k_pos + k_neg > m or k_pos + k_neg == 0:
            raise ValueError(f"need k_pos, k_neg >= 0 with 0 < k_pos + k_neg <= {m}")
        candidates = [(k_pos, k_neg)]
    else:
        candidates = default_guess_counts(m) or [(1, 1)]
    n_tests = len(candidates)
    per_test_confidence = 1 - (1 - confidence) / n_tests

    # Stable order: ties are broken by position, never by which canaries were inserted.
    order = np.argsort(-values, kind="stable")
    best: OneRunBound | None = None
    for k_plus, k_minus in candidates:
        top, bottom = order[:k_plus], order[m - k_minus :] if k_minus else order[:0]
        correct = int(np.count_nonzero(truth[top]) + np.count_nonzero(~truth[bottom]))
        r = k_plus + k_minus
        value = epsilon_from_guesses(
            m=m, r=r, v=correct, delta=delta, confidence=per_test_confidence
        )
        bound = OneRunBound(
            value=value,
            confidence=confidence,
            delta=delta,
            k_pos=k_plus,
            k_neg=k_minus,
            n_guesses=r,
            n_correct=correct,
            n_canaries=m,
            n_tests=n_tests,
        )
        if best is None or bound.value > best.value:
            best = bound
    assert best is not None
    return best
