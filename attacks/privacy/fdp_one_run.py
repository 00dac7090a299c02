"""f-DP auditing in one run with a Gaussian trade-off (Mahloujifar, Melis & Chaudhuri, 2024).

Same protocol as the Steinke, Nasr & Jagielski (2023) one-run audit: m candidates (canaries,
or records whose membership was a fair coin), the auditor guesses "member" for the k
highest scores, v of the guesses are right. Instead of the (epsilon, delta)-DP binomial
tail, the observation is tested against the whole trade-off curve of a mu-GDP mechanism,
which is what DP-SGD's Gaussian noise gives. The paper's recursion ("audit with cap", its
Algorithm) bounds how large a fraction of correct (r) and wrong (h) guesses a mechanism with
trade-off f can produce with probability alpha; when v/m, (k - v)/m cannot be reached, mu is
rejected. The largest rejected mu, turned into epsilon at the claim's delta by the exact
mu-GDP conversion (Dong, Roth & Su 2019, Opacus' `eps_from_mu`), is the bound.

Sound only against a claim whose trade-off curve is at least as private as a Gaussian one
(DP-SGD); a generic (epsilon, delta) claim must use the Steinke bound.

jax_privacy's `auditing.py` (`epsilon_one_run_fdp`) is the public reference this module was
checked against; the numbers are reproduced in tests/attacks/test_fdp_one_run.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri
from scipy.stats import beta

from attacks.privacy.empirical import epsilon_from_mu

METHOD = (
    "f-DP one-run (Mahloujifar, Melis & Chaudhuri 2024): top-k guesses tested against a "
    "Gaussian trade-off curve"
)
THREAT_MODEL = (
    "candidates' membership a fair coin each, one training run; black-box scores of the "
    "final model; assumes a Gaussian (mu-GDP) trade-off curve, as DP-SGD's noise gives"
)
# mu beyond which the bound is reported as this cap (mu = 40 is a blatantly public record).
_MAX_MU = 40.0

ThresholdRule = Literal["grid", "hull"]


@dataclass(frozen=True)
class FdpOneRunBound:
    """The bound with the counts behind it, so anyone can recompute it."""

    mu: float
    epsilon: float
    confidence: float
    delta: float
    n_guesses: int
    n_correct: int
    n_candidates: int
    n_tests: int
    threshold_rule: str
    method: str = METHOD
    threat_model: str = THREAT_MODEL


def _excess(mu: float, *, m: int, k: int, v: int, alpha: float) -> float:
    """Positive when k guesses with v correct out of m are too good for a mu-GDP mechanism.

    The recursion starts from the mass alpha spreads over the observed right/wrong fractions
    and, guess by guess from the last correct one back, raises the wrong-guess mass to what
    the trade-off curve forces (f^-1 of the right-guess mass) and lets the right-guess mass
    grow in proportion; if the result cannot cover k/m, the observation rejects mu.
    """
    right, wrong = alpha * v / m, alpha * (k - v) / m
    for i in range(v - 1, -1, -1):
        forced = float(ndtr(ndtri(right) - mu)) if mu > 0 else right
        if forced <= wrong:
            break  # nothing moves any more: later steps cannot change it either
        right = min(right + i / (k - i) * (forced - wrong), 1.0)
        wrong = forced
    return right + wrong - k / m


def mu_lower_bound(*, m: int, k: int, v: int, confidence: float) -> float:
    """The largest mu that (k guesses, v correct, out of m) rejects at `confidence`; 0 if none."""
    if not 0 <= v <= k <= m or m < 1:
        raise ValueError(f"need 0 <= v <= k <= m and m >= 1, got v={v}, k={k}, m={m}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
    alpha = 1 - confidence

    def excess(mu: float) -> float:
        return _excess(mu, m=m, k=k, v=v, alpha=alpha)

    if k == 0 or excess(0.0) <= 0:
        return 0.0
    if excess(_MAX_MU) > 0:
        return _MAX_MU
    return float(brentq(excess, 0.0, _MAX_MU, xtol=1e-12, rtol=1e-12))


def roc_hull_thresholds(members: np.ndarray, non_members: np.ndarray) -> np.ndarray:
    """Thresholds on the upper convex hull of the (missed members, rejected non-members)
    counts: the guess sets jax_privacy's default ("Bonferroni") strategy compares."""
    thresholds = np.concatenate([np.union1d(members, non_members), [np.inf]])
    missed = np.searchsorted(np.sort(members), thresholds, side="left")
    rejected = np.searchsorted(np.sort(non_members), thresholds, side="left")
    hull: list[int] = []
    for index in range(thresholds.size):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # Drop b when it lies on or below the chord from a to the new point (upper hull).
            turn = (missed[b] - missed[a]) * (rejected[index] - rejected[a]) - (
                rejected[b] - rejected[a]
            ) * (missed[index] - missed[a])
            if turn >= 0:
                hull.pop()
            else:
                break
        hull.append(index)
    return thresholds[np.array(hull)]


def guess_counts(m: int) -> list[int]:
    """Guess-set sizes fixed before looking at the scores (each costs a share of alpha)."""
    return sorted({k for share in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5) if (k := round(m * share))})


def fdp_one_run_bound(
    member_scores: np.ndarray,
    non_member_scores: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    threshold_rule: ThresholdRule = "grid",
    seed: int = 0,
) -> FdpOneRunBound:
    """The f-DP one-run bound from scores of members and non-members (higher = member).

    `threshold_rule="grid"`: the top-k guess sets of `guess_counts(m)`, fixed in advance,
    ties broken by a seeded shuffle (never by position, which would favour whichever set
    comes first); Bonferroni over them. `"hull"`: every threshold on the ROC's convex hull,
    Bonferroni over the hull's size, as jax_privacy does (used to reproduce its numbers).
    `confidence` is this bound's own level: a caller comparing several bounds passes its
    share of the family's confidence.
    """
    members = _finite(member_scores, "member")
    non_members = _finite(non_member_scores, "non-member")
    if members.size < 1 or non_members.size < 1:
        raise ValueError("need at least one member and one non-member score")
    if not 0 < delta < 1:
        raise ValueError("the Gaussian-DP route needs 0 < delta < 1 (mu-GDP is never pure DP)")
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
    m = members.size + non_members.size
    if threshold_rule == "hull":
        thresholds = roc_hull_thresholds(members, non_members)
        guesses = [
            (
                int(np.count_nonzero(members >= t) + np.count_nonzero(non_members >= t)),
                int(np.count_nonzero(members >= t)),
            )
            for t in thresholds
        ]
        n_tests = len(thresholds)
    elif threshold_rule == "grid":
        scores = np.concatenate([members, non_members])
        truth = np.arange(m) < members.size
        shuffle = np.random.default_rng(seed).permutation(m)
        order = shuffle[np.argsort(-scores[shuffle], kind="stable")]
        correct = np.cumsum(truth[order])
        counts = guess_counts(m)
        guesses = [(k, int(correct[k - 1])) for k in counts]
        n_tests = max(len(counts), 1)
    else:
        raise ValueError(f"unknown threshold rule {threshold_rule!r}; use 'grid' or 'hull'")
    per_test = 1 - (1 - confidence) / n_tests

    # Most promising first (highest precision lower bound), so most later ones are ruled
    # out by one evaluation at the best mu so far.
    def precision_low(kv: tuple[int, int]) -> float:
        k, v = kv
        return float(beta.ppf(1 - per_test, v, k - v + 1)) if v > 0 else 0.0

    best_mu, best = 0.0, (0, 0)
    for k, v in sorted(guesses, key=precision_low, reverse=True):
        if k == 0 or v == 0:
            continue
        if _excess(best_mu, m=m, k=k, v=v, alpha=1 - per_test) <= 0:
            continue
        mu = mu_lower_bound(m=m, k=k, v=v, confidence=per_test)
        if mu > best_mu:
            best_mu, best = mu, (k, v)
    return FdpOneRunBound(
        mu=best_mu,
        epsilon=epsilon_from_mu(best_mu, delta) if best_mu > 0 else 0.0,
        confidence=confidence,
        delta=delta,
        n_guesses=best[0],
        n_correct=best[1],
        n_candidates=m,
        n_tests=n_tests,
        threshold_rule=threshold_rule,
    )


def _finite(scores: np.ndarray, who: str) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{who} scores contain NaN or infinite values")
    return values
