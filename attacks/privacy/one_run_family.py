"""One-run bounds as members of the verdict's Bonferroni family: over records and canaries.

Records count as one-run candidates only when their membership was a fair coin: drawn by
the service (an audit split, proven) or chosen by the pipeline and not told apart by the
blind baseline (assumed exchangeable). Pipeline sets of unequal size are first cut to equal
size at random: with 1000 members and 200 non-members, guessing "member" is right 83% of
the time by base rate alone, and the one-run statistics would read that as leakage.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.stats import rankdata

from attacks.privacy.fdp_one_run import THREAT_MODEL as FDP_THREAT_MODEL
from attacks.privacy.fdp_one_run import fdp_one_run_bound
from attacks.privacy.one_run import one_run_epsilon_lower_bound
from attacks.report import EpsilonBound

Evidence = Literal["audit-split", "assumed-exchangeable", "canaries"]

ASSUMES = {
    "audit-split": "membership drawn by leakgate's fair coin; one training run (proven)",
    "assumed-exchangeable": (
        "membership chosen by the pipeline, assumed exchangeable (as if a fair coin) because "
        "the blind baseline could not tell members from non-members; one training run"
    ),
    "canaries": "canaries inserted once each by a fair coin; one training run (proven)",
}
GAUSSIAN_ASSUMES = "; a Gaussian (mu-GDP) trade-off curve, as DP-SGD's noise gives"


def same_ranking_groups(scores: dict[str, np.ndarray]) -> list[list[str]]:
    """Attacks grouped by the order they rank records in (ties included).

    Scores that are monotone transforms of each other (loss and confidence, say) give the
    same top-k guesses and the same one-run bounds: one test, not two, in the family.
    """
    groups: dict[bytes, list[str]] = {}
    for name, score in scores.items():
        ranks = rankdata(np.asarray(score, dtype=np.float64), method="min").astype(np.int64)
        groups.setdefault(ranks.tobytes(), []).append(name)
    return list(groups.values())


def balanced(is_member: np.ndarray, seed: int) -> np.ndarray:
    """Indices of a random subset with as many members as non-members (order shuffled)."""
    rng = np.random.default_rng(seed)
    members = rng.permutation(np.flatnonzero(is_member))
    non_members = rng.permutation(np.flatnonzero(~is_member))
    n = min(members.size, non_members.size)
    return rng.permutation(np.concatenate([members[:n], non_members[:n]]))


def one_run_tests_per_attack(gaussian: bool) -> int:
    """Family members one attack group adds: Steinke, plus f-DP for a DP-SGD claim."""
    return 2 if gaussian else 1


def record_bounds(
    scores: dict[str, np.ndarray],
    is_member: np.ndarray,
    *,
    evidence: Literal["audit-split", "assumed-exchangeable"],
    delta: float,
    confidence: float,
    n_tests: int,
    gaussian: bool,
    seed: int = 0,
) -> list[EpsilonBound]:
    """Steinke (and, for a DP-SGD claim, f-DP) bounds over records, one per ranking group.

    Each bound gets its share 1 - (1 - confidence) / n_tests of the family's confidence.
    """
    truth = np.asarray(is_member, dtype=bool)
    chosen = balanced(truth, seed) if evidence == "assumed-exchangeable" else None
    bounds = []
    for group in same_ranking_groups(scores):
        score = np.asarray(scores[group[0]], dtype=np.float64)
        if chosen is not None:
            s, t = score[chosen], truth[chosen]
        else:
            # Ties must not be broken by position (members come first): shuffle once.
            order = np.random.default_rng(seed).permutation(score.size)
            s, t = score[order], truth[order]
        if t.all() or not t.any():
            continue
        source = group[0]
        same = ", ".join(group[1:]) or None
        bounds.append(
            steinke_bound(
                s,
                t,
                delta=delta,
                confidence=confidence,
                n_tests=n_tests,
                source=source,
                evidence=evidence,
                same_ranking=same,
            )
        )
        if gaussian:
            bounds.append(
                fdp_bound(
                    s,
                    t,
                    delta=delta,
                    confidence=confidence,
                    n_tests=n_tests,
                    source=source,
                    evidence=evidence,
                    same_ranking=same,
                    seed=seed,
                )
            )
    return bounds


def steinke_bound(
    scores: np.ndarray,
    inserted: np.ndarray,
    *,
    delta: float,
    confidence: float,
    n_tests: int,
    source: str,
    evidence: Evidence,
    same_ranking: str | None = None,
) -> EpsilonBound:
    """The Steinke, Nasr & Jagielski one-run bound as one member of the family."""
    truth = np.asarray(inserted, dtype=bool).ravel()
    share = 1 - (1 - confidence) / n_tests
    raw = one_run_epsilon_lower_bound(scores, truth, delta=delta, confidence=share)
    return EpsilonBound(
        method="one-run",
        source=source,
        value=raw.value,
        confidence=confidence,
        delta=delta,
        n_tests=n_tests,
        n_eval_members=int(truth.sum()),
        n_eval_non_members=int((~truth).sum()),
        threat_model=raw.threat_model,
        description=raw.method,
        details={
            "k_pos": raw.k_pos,
            "k_neg": raw.k_neg,
            "n_guesses": raw.n_guesses,
            "n_correct": raw.n_correct,
            "n_candidates": raw.n_canaries,
            "guess_sets_tried": raw.n_tests,
            "evidence": evidence,
            "same_ranking": same_ranking,
        },
        assumes=ASSUMES[evidence],
    )


def fdp_bound(
    scores: np.ndarray,
    inserted: np.ndarray,
    *,
    delta: float,
    confidence: float,
    n_tests: int,
    source: str,
    evidence: Evidence,
    same_ranking: str | None = None,
    seed: int = 0,
) -> EpsilonBound:
    """The f-DP (Gaussian) one-run bound as one member of the family.

    Guesses are tried on each tail: "member" for the highest scores, and "non-member" for the
    lowest (the same audit with the roles swapped and the scores negated, sound because DP
    bounds both directions of a neighbouring pair). The two halve this bound's share of alpha.
    """
    truth = np.asarray(inserted, dtype=bool).ravel()
    values = np.asarray(scores, dtype=np.float64).ravel()
    share = 1 - (1 - confidence) / (2 * n_tests)
    top = fdp_one_run_bound(values[truth], values[~truth], delta=delta, confidence=share, seed=seed)
    bottom = fdp_one_run_bound(
        -values[~truth], -values[truth], delta=delta, confidence=share, seed=seed
    )
    raw, tail = (top, "top") if top.mu >= bottom.mu else (bottom, "bottom")
    return EpsilonBound(
        method="fdp-one-run",
        source=source,
        value=raw.epsilon,
        confidence=confidence,
        delta=delta,
        n_tests=n_tests,
        n_eval_members=int(truth.sum()),
        n_eval_non_members=int((~truth).sum()),
        threat_model=FDP_THREAT_MODEL,
        description=raw.method,
        details={
            "mu": raw.mu,
            "n_guesses": raw.n_guesses,
            "n_correct": raw.n_correct,
            "n_candidates": raw.n_candidates,
            "guess_sets_tried": 2 * raw.n_tests,
            "tail": tail,
            "evidence": evidence,
            "same_ranking": same_ranking,
        },
        assumes=ASSUMES[evidence] + GAUSSIAN_ASSUMES,
    )
