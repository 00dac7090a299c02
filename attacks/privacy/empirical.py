"""Empirical lower bounds on epsilon from an attack's scores: two statistics, one split.

Both pick a threshold on a random half of the records and bound the error rates on the other
half with one-sided Clopper-Pearson intervals, so choosing the best threshold over all of them
costs nothing in confidence. They differ in how the rates become epsilon:

- "clopper-pearson" (Jagielski, Ullman & Oprea, 2020): the DP inequalities directly; sound
  for every (epsilon, delta)-DP mechanism.
- "gdp" (Nasr et al., 2023): the rates bound mu of a Gaussian-DP trade-off curve, and mu gives
  epsilon at delta. Much tighter for strong attacks, but it assumes the mechanism is mu-GDP
  (exactly true of the Gaussian mechanism, approximately of DP-SGD). It is therefore used only
  against a claim of DP-SGD training: a generic (epsilon, delta)-DP mechanism such as
  randomized response may sit far from a Gaussian curve and would be falsely accused.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.stats import beta, norm

from attacks.report import EpsilonBound

METHODS = ("clopper-pearson", "gdp")
DESCRIPTIONS = {
    "clopper-pearson": (
        "Clopper-Pearson bounds on FPR and FNR at a threshold chosen on a random half and "
        "evaluated on the other half; epsilon from the DP inequalities (Jagielski et al., 2020)"
    ),
    "gdp": (
        "Clopper-Pearson bounds on FPR and FNR at a threshold chosen on a random half and "
        "evaluated on the other half; mu >= Phi^-1(1 - FPR) - Phi^-1(FNR) of a Gaussian-DP "
        "trade-off curve, then epsilon at delta from mu (Nasr et al., 2023)"
    ),
}
THREAT_MODEL = (
    "black-box, final model; membership assumed to be a fair coin per record "
    "(members and non-members drawn at random from one distribution)"
)
GDP_ASSUMPTION = "; assumes a Gaussian-DP trade-off curve (as DP-SGD's noise gives)"
# kept for callers that name the split statistic's description
METHOD = DESCRIPTIONS["clopper-pearson"]


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


def gdp_mu(fpr_hi: float, fnr_hi: float) -> float:
    """The smallest mu of a mu-GDP mechanism that allows a test with these error rates."""
    return max(0.0, float(norm.isf(fpr_hi) - norm.ppf(fnr_hi)))


def epsilon_from_mu(mu: float, delta: float) -> float:
    """Epsilon of a mu-GDP mechanism at delta (Dong, Roth & Su, 2019), by Opacus's solver."""
    from opacus.accountants.analysis.gdp import delta_eps_mu, eps_from_mu

    if not 0 < delta < 1:
        raise ValueError("the Gaussian-DP route needs 0 < delta < 1 (mu-GDP is never pure DP)")
    if mu <= 0 or delta_eps_mu(eps=0.0, mu=mu) <= delta:
        return 0.0
    return float(eps_from_mu(mu=mu, delta=delta))


def epsilon_lower_bound(
    member_scores: np.ndarray,
    non_member_scores: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    n_tests: int = 1,
    seed: int = 0,
    method: str = "clopper-pearson",
    source: str = "attack",
) -> EpsilonBound:
    """A lower bound on epsilon that holds with `confidence`, from one attack's scores.

    The threshold is picked on a random half of the records and the error rates are
    measured on the other half, so picking the best threshold does not inflate the bound.
    FPR and FNR each get a one-sided Clopper-Pearson bound at level alpha / (2 n_tests):
    both hold together, for all n_tests bounds compared, with probability >= confidence.
    For "clopper-pearson" both DP inequalities hold at those rates, so the larger term is
    reported and `details["direction"]` names it ("low-fpr": ln((1-delta-FNR)/FPR), "low-fnr":
    the mirror); for "gdp" they bound mu, reported in `details["mu"]`.
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
    if method not in METHODS:
        raise ValueError(f"unknown bound method {method!r}; known: {list(METHODS)}")
    if method == "gdp" and delta == 0:
        raise ValueError("the Gaussian-DP route needs delta > 0 (mu-GDP is never pure DP)")
    rate_confidence = 1 - (1 - confidence) / (2 * n_tests)

    rng = np.random.default_rng(seed)
    select_members, eval_members = _halves(rng, members)
    select_non_members, eval_non_members = _halves(rng, non_members)
    threshold = _select_threshold(
        select_members,
        select_non_members,
        eval_sizes=(eval_members.size, eval_non_members.size),
        rate_confidence=rate_confidence,
        objective=_cp_objective(delta) if method == "clopper-pearson" else _gdp_objective,
    )

    false_positives = int(np.count_nonzero(eval_non_members >= threshold))
    false_negatives = int(np.count_nonzero(eval_members < threshold))
    fpr_upper = clopper_pearson_upper(false_positives, eval_non_members.size, rate_confidence)
    fnr_upper = clopper_pearson_upper(false_negatives, eval_members.size, rate_confidence)
    details: dict[str, float | int | str | None] = {
        "threshold": float(threshold),
        "false_positives": false_positives,
        "false_negatives": false_negatives,
        "fpr_upper": fpr_upper,
        "fnr_upper": fnr_upper,
    }
    threat_model = THREAT_MODEL
    if method == "clopper-pearson":
        low_fpr, low_fnr = _bound_terms(fpr_upper, fnr_upper, delta)
        value = max(0.0, low_fpr, low_fnr)
        details["direction"] = "low-fpr" if low_fpr >= low_fnr else "low-fnr"
    else:
        mu = gdp_mu(fpr_upper, fnr_upper)
        value = epsilon_from_mu(mu, delta)
        details["mu"] = mu
        threat_model += GDP_ASSUMPTION
    return EpsilonBound(
        method=method,
        source=source,
        value=value,
        confidence=confidence,
        delta=delta,
        n_tests=n_tests,
        n_eval_members=int(eval_members.size),
        n_eval_non_members=int(eval_non_members.size),
        threat_model=threat_model,
        description=DESCRIPTIONS[method],
        details=details,
    )


def methods_for(delta: float, *, gaussian: bool) -> tuple[str, ...]:
    """The statistics that apply: the Gaussian-DP route needs delta > 0 and a claim whose
    trade-off curve is Gaussian (`gaussian`: the claim is DP-SGD training)."""
    return METHODS if gaussian and delta > 0 else ("clopper-pearson",)


def attack_bounds(
    member_scores: np.ndarray,
    non_member_scores: np.ndarray,
    *,
    source: str,
    delta: float,
    confidence: float = 0.95,
    n_tests: int,
    seed: int = 0,
    gaussian: bool = False,
) -> list[EpsilonBound]:
    """Every applicable bound from one attack's scores, each corrected for `n_tests`."""
    return [
        epsilon_lower_bound(
            member_scores,
            non_member_scores,
            delta=delta,
            confidence=confidence,
            n_tests=n_tests,
            seed=seed,
            method=method,
            source=source,
        )
        for method in methods_for(delta, gaussian=gaussian)
    ]


def family_bounds(
    scores: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    delta: float,
    confidence: float = 0.95,
    seed: int = 0,
    extra_tests: int = 0,
    gaussian: bool = False,
) -> list[EpsilonBound]:
    """Every bound from every attack's (member, non-member) scores, as one Bonferroni family.

    `gaussian` (the claim is DP-SGD training) adds the Gaussian-DP statistic to each attack.
    `extra_tests` reserves room for bounds appended later (a canary one-run bound): the
    family's size is attacks x statistics + extra_tests, and each bound is corrected for it.
    """
    n_tests = len(scores) * len(methods_for(delta, gaussian=gaussian)) + extra_tests
    return [
        bound
        for source, (members, non_members) in scores.items()
        for bound in attack_bounds(
            members,
            non_members,
            source=source,
            delta=delta,
            confidence=confidence,
            n_tests=n_tests,
            seed=seed,
            gaussian=gaussian,
        )
    ]


Objective = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _cp_objective(delta: float) -> Objective:
    def objective(fpr_hi: np.ndarray, fnr_hi: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.fmax(
                np.where(1 - delta - fnr_hi > 0, np.log((1 - delta - fnr_hi) / fpr_hi), -np.inf),
                np.where(1 - delta - fpr_hi > 0, np.log((1 - delta - fpr_hi) / fnr_hi), -np.inf),
            )

    return objective


def _gdp_objective(fpr_hi: np.ndarray, fnr_hi: np.ndarray) -> np.ndarray:
    """mu's bound; epsilon grows with mu, so the best mu is the best epsilon."""
    return norm.isf(fpr_hi) - norm.ppf(fnr_hi)


def _select_threshold(
    members: np.ndarray,
    non_members: np.ndarray,
    *,
    eval_sizes: tuple[int, int],
    rate_confidence: float,
    objective: Objective,
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
    return float(thresholds[int(np.argmax(objective(fpr_hi, fnr_hi)))])


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
