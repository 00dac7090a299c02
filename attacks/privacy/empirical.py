"""Empirical lower bounds on epsilon from an attack's error rates (Jagielski et al., 2020)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta

from attacks.report import EpsilonBound

METHOD = "clopper-pearson, threshold chosen on a random half, evaluated on the other half"
THREAT_MODEL = (
    "black-box, final model; membership assumed to be a fair coin per record "
    "(members and non-members drawn at random from one distribution)"
)


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Exact two-sided interval for a binomial rate: never narrower than the data allow."""
    _check_counts(k, n, confidence)
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def clopper_pearson_upper(k: int, n: int, confidence: float) -> float:
    """Exact one-sided upper bound on a binomial rate: true rate <= it with `confidence`."""
    _check_counts(k, n, confidence)
    return 1.0 if k == n else float(beta.ppf(confidence, k + 1, n - k))


def epsilon_from_rates(fpr_hi: float, fnr_hi: float, delta: float) -> float:
    """The epsilon any (epsilon, delta)-DP mechanism needs to allow these error rates.

    DP forces FPR + e^eps FNR >= 1 - delta and FNR + e^eps FPR >= 1 - delta; both hold
    for the same test, so the larger of the two implied bounds counts. Never negative.
    """
    return max(0.0, *_bound_terms(fpr_hi, fnr_hi, delta))


def _bound_terms(fpr_hi: float, fnr_hi: float, delta: float) -> tuple[float, float]:
    """ln((1-delta-FNR)/FPR) ("low-fpr") and ln((1-delta-FPR)/FNR) ("low-fnr"); -inf if void."""
    terms = []
    for numerator, denominator in ((1 - delta - fnr_hi, fpr_hi), (1 - delta - fpr_hi, fnr_hi)):
        valid = numerator > 0 and denominator > 0
        terms.append(math.log(numerator / denominator) if valid else -math.inf)
    return terms[0], terms[1]


def epsilon_lower_bound(
    member_scores: np.ndarray,
    non_member_scores: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    n_tests: int = 1,
    seed: int = 0,
) -> EpsilonBound:
    """A lower bound on epsilon that holds with `confidence`, from one attack's scores.

    The threshold is picked on a random half of the records and the error rates are
    measured on the other half, so picking the best threshold does not inflate the bound.
    FPR and FNR each get a one-sided Clopper–Pearson bound at level alpha / (2 n_tests):
    both hold together, for all n_tests attacks compared, with probability >= confidence.
    Both DP inequalities then hold at those bounds, so the larger term is reported and
    `direction` names it ("low-fpr": ln((1-delta-FNR)/FPR), "low-fnr": the mirror).
    """
    members = _finite(member_scores, "member")
    non_members = _finite(non_member_scores, "non-member")
    if members.size < 2 or non_members.size < 2:
        raise ValueError("need at least two member and two non-member scores to split")
    if not 0 <= delta < 1:
        raise ValueError("delta must lie in [0, 1)")
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
    if n_tests < 1:
        raise ValueError("n_tests must be at least 1")
    rate_confidence = 1 - (1 - confidence) / (2 * n_tests)

    rng = np.random.default_rng(seed)
    select_members, eval_members = _halves(rng, members)
    select_non_members, eval_non_members = _halves(rng, non_members)
    threshold = _select_threshold(
        select_members,
        select_non_members,
        eval_sizes=(eval_members.size, eval_non_members.size),
        delta=delta,
        rate_confidence=rate_confidence,
    )

    false_positives = int(np.count_nonzero(eval_non_members >= threshold))
    false_negatives = int(np.count_nonzero(eval_members < threshold))
    fpr_upper = clopper_pearson_upper(false_positives, eval_non_members.size, rate_confidence)
    fnr_upper = clopper_pearson_upper(false_negatives, eval_members.size, rate_confidence)
    low_fpr, low_fnr = _bound_terms(fpr_upper, fnr_upper, delta)
    return EpsilonBound(
        value=max(0.0, low_fpr, low_fnr),
        confidence=confidence,
        delta=delta,
        method=METHOD,
        threshold=float(threshold),
        direction="low-fpr" if low_fpr >= low_fnr else "low-fnr",
        n_eval_members=int(eval_members.size),
        n_eval_non_members=int(eval_non_members.size),
        false_positives=false_positives,
        false_negatives=false_negatives,
        fpr_upper=fpr_upper,
        fnr_upper=fnr_upper,
        n_tests=n_tests,
        threat_model=THREAT_MODEL,
    )


def _select_threshold(
    members: np.ndarray,
    non_members: np.ndarray,
    *,
    eval_sizes: tuple[int, int],
    delta: float,
    rate_confidence: float,
) -> float:
    """The score threshold whose selection-half rates promise the largest final bound.

    One sort and cumulative counts give FP and FN at every candidate threshold; each rate
    is scaled to the evaluation half's size and bounded as the evaluation will bound it.
    """
    thresholds = np.unique(np.concatenate([members, non_members]))
    sorted_members, sorted_non_members = np.sort(members), np.sort(non_members)
    # Flag "member" when score >= threshold.
    fp_rate = 1 - np.searchsorted(sorted_non_members, thresholds, side="left") / non_members.size
    fn_rate = np.searchsorted(sorted_members, thresholds, side="left") / members.size
    n_eval_members, n_eval_non_members = eval_sizes
    fpr_hi = _cp_upper(fp_rate * n_eval_non_members, n_eval_non_members, rate_confidence)
    fnr_hi = _cp_upper(fn_rate * n_eval_members, n_eval_members, rate_confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        candidates = np.fmax(
            np.where(1 - delta - fnr_hi > 0, np.log((1 - delta - fnr_hi) / fpr_hi), -np.inf),
            np.where(1 - delta - fpr_hi > 0, np.log((1 - delta - fpr_hi) / fnr_hi), -np.inf),
        )
    return float(thresholds[int(np.argmax(candidates))])


def _cp_upper(k: np.ndarray, n: int, confidence: float) -> np.ndarray:
    """Vectorised one-sided Clopper–Pearson upper bound; k may be fractional (expected counts)."""
    k = np.asarray(k, dtype=np.float64)
    upper = np.ones_like(k)
    below_n = k < n
    upper[below_n] = beta.ppf(confidence, k[below_n] + 1, n - k[below_n])
    return upper


def _halves(rng: np.random.Generator, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shuffled = scores[rng.permutation(scores.size)]
    half = scores.size // 2
    return shuffled[:half], shuffled[half:]


def _finite(scores: np.ndarray, who: str) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{who} scores contain NaN or infinite values")
    return values


def _check_counts(k: int, n: int, confidence: float) -> None:
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
