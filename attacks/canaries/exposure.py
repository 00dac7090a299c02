"""Exposure (Carlini et al., "The Secret Sharer", 2019): how far up the candidate list the
model ranks the true secret, in bits. exposure = log2 |R| - log2 rank; 0 bits means no
better than chance is impossible to tell from the secret's rank, log2 |R| means rank 1.

Exact when the candidate space can be enumerated within a budget; otherwise from a
skew-normal fitted to the scores of sampled candidates, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from attacks.canaries.model import CanaryModel, CanaryTokens

DEFAULT_BUDGET = 100_000
"""Candidates scored per canary at most when enumerating; 10^4 (a 4-digit pin) fits."""

DEFAULT_SAMPLES = 5_000
"""Candidates sampled per canary when the space is too large to enumerate."""

MIN_RESOLVED = 10
"""Sampled candidates at or above the true secret needed to trust the sampled share."""

TAIL_SHARE = 0.1
"""Share of the sampled scores, from the top, that the skew-normal tail is fitted to."""

EXTRAPOLATION_TOLERANCE_BITS = 0.5
"""How far extrapolated exposure may sit from the exact one where the sample resolves it
(checked on a 10^4 space in the tests). Beyond that, in the fitted tail, it is an estimate
that was measured up to about 3.5 bits off on a tiny classifier: the report says which
method gave each number."""


@dataclass(frozen=True)
class Exposure:
    exposure: float
    rank: float
    candidate_space: int
    method: Literal["exact", "extrapolated"]
    n_scored: int


def all_secrets(n_slots: int, alphabet_size: int) -> np.ndarray:
    """Every secret as alphabet indices [alphabet_size ** n_slots, n_slots], in order."""
    grid = np.arange(alphabet_size**n_slots, dtype=np.int64)
    powers = alphabet_size ** np.arange(n_slots - 1, -1, -1, dtype=np.int64)
    return (grid[:, None] // powers) % alphabet_size


def _rank_scores(model: CanaryModel, log_likelihood: np.ndarray) -> np.ndarray:
    """Scores to rank candidates by: the log-likelihood, or for a classifier the log-odds of
    the label (same order as log p, but unbounded above, so a skew-normal fits its tail)."""
    if model.kind != "text-classification":
        return log_likelihood
    with np.errstate(divide="ignore"):
        return log_likelihood - np.log(-np.expm1(np.minimum(log_likelihood, -1e-300)))


def exact_rank(true_score: float, scores: np.ndarray) -> float:
    """1 + candidates scored higher + half of the others scored equal (the mean rank under
    random tie-breaking: a model blind to the secret gets the middle, not rank 1)."""
    better = int(np.sum(scores > true_score))
    ties = int(np.sum(scores == true_score)) - 1  # the true secret ties with itself
    return 1.0 + better + max(ties, 0) / 2.0


def exposure_from_rank(rank: float, candidate_space: int) -> float:
    return math.log2(candidate_space) - math.log2(rank)


def extrapolated_exposure(true_score: float, sampled: np.ndarray, candidate_space: int) -> float:
    """-log2 of the estimated share of candidates scored at least as high as the true secret.

    Where at least MIN_RESOLVED sampled candidates reach the true score, the sampled share
    itself is the estimate. Beyond that, a skew-normal fitted to the sampled scores' top
    TAIL_SHARE extrapolates the tail (the Secret Sharer's fit, on the tail only: a
    classifier's scores are bimodal, which one skew-normal over all of them fits badly).
    Floored at one candidate in the space.
    """
    resolved = int(np.sum(sampled >= true_score))
    if resolved >= MIN_RESOLVED:
        share = resolved / len(sampled)
    else:
        cut = float(np.quantile(sampled, 1 - TAIL_SHARE))
        tail = sampled[sampled >= cut]
        shape, loc, scale = stats.skewnorm.fit(tail)
        beyond = stats.skewnorm.sf(true_score, shape, loc, scale)
        share = TAIL_SHARE * float(beyond / max(stats.skewnorm.sf(cut, shape, loc, scale), 1e-300))
    return float(np.clip(-math.log2(max(share, 1e-300)), 0.0, math.log2(candidate_space)))


def measure_exposure(
    model: CanaryModel,
    canaries: list[CanaryTokens],
    alphabet_size: int,
    *,
    budget: int = DEFAULT_BUDGET,
    n_samples: int = DEFAULT_SAMPLES,
    force_extrapolation: bool = False,
    batch_size: int = 1024,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[Exposure]:
    """Exposure of each canary's secret among every (or sampled) candidate secrets."""
    results = []
    for index, canary in enumerate(canaries):
        n_slots = len(canary.positions)
        space = alphabet_size**n_slots
        own_ids = canary.with_secrets(canary.secret[None, :])
        true_score = _rank_scores(model, model.score_ids(own_ids, canary.labels_for(1)))[0]
        if space <= budget and not force_extrapolation:
            candidates = all_secrets(n_slots, alphabet_size)
        else:
            rng = np.random.default_rng([seed, index])
            candidates = rng.integers(0, alphabet_size, size=(n_samples, n_slots))
        labels = canary.labels_for(len(candidates))
        scores = _rank_scores(
            model,
            model.score_ids(canary.with_secrets(candidates), labels, batch_size=batch_size),
        )
        if space <= budget and not force_extrapolation:
            # The true secret's own row is scored in a different batch; use that row's score
            # so batch-dependent rounding cannot split a tie with itself.
            own = int(np.ravel_multi_index(tuple(canary.secret), (alphabet_size,) * n_slots))
            rank = exact_rank(scores[own], scores)
            results.append(
                Exposure(exposure_from_rank(rank, space), rank, space, "exact", len(scores))
            )
        else:
            value = extrapolated_exposure(true_score, scores, space)
            results.append(Exposure(value, space * 2.0**-value, space, "extrapolated", len(scores)))
        if progress is not None:
            progress(index + 1, len(canaries))
    return results
