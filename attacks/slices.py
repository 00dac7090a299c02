"""Score histograms and sliced metrics: where, and for whom, an attack separates members.

A single AUC hides two things readers of ML Privacy Meter and TF Privacy expect to see: how
the member and non-member scores overlap (a histogram per attack), and whether one class, or
the records the model gets wrong, leak far more than the average (TF Privacy's "most
vulnerable class"). Both are computed here from the scores the recipe already holds; the
histograms keep counts only, never scores or records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.stats import norm

from attacks.metrics import auc, roc_curve, tpr_at_fpr
from attacks.report import Interval, ScoreHistogram, SliceMetrics, Slices

N_BINS = 30
# The histogram range is cut at these quantiles of all scores; the end bins keep the tails.
TAIL_QUANTILE = 0.005
# A slice gets metrics only with at least this many members and non-members.
MIN_SLICE_RECORDS = 10
# More classes than this: only the largest are sliced (a page, not a data export).
MAX_CLASS_SLICES = 50
SLICE_FPR = 0.01
Feature = Literal["class", "correctness"]


def score_histogram(
    attack: str, member_scores: np.ndarray, non_member_scores: np.ndarray, n_bins: int = N_BINS
) -> ScoreHistogram:
    """Counts of member and non-member scores in `n_bins` equal bins over the scores' range."""
    members = np.asarray(member_scores, dtype=np.float64).ravel()
    non_members = np.asarray(non_member_scores, dtype=np.float64).ravel()
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    both = np.concatenate([members, non_members])
    both = both[np.isfinite(both)]
    if both.size == 0:
        raise ValueError(f"attack {attack!r} has no finite scores to histogram")
    low, high = (float(v) for v in np.quantile(both, [TAIL_QUANTILE, 1 - TAIL_QUANTILE]))
    if not high > low:
        low, high = float(both.min()), float(both.max())
    if not high > low:
        # Every score equal: one bin around it.
        low, high = low - 0.5, high + 0.5
    clipped = bool(both.min() < low or both.max() > high)
    edges = np.linspace(low, high, n_bins + 1)

    def counts(values: np.ndarray) -> list[int]:
        finite = np.clip(values[np.isfinite(values)], low, high)
        return [int(c) for c in np.histogram(finite, bins=edges)[0]]

    return ScoreHistogram(
        attack=attack,
        edges=[float(e) for e in edges],
        members=counts(members),
        non_members=counts(non_members),
        clipped=clipped,
    )


def _auc_interval(value: float, n1: int, n0: int, confidence: float) -> Interval:
    """Hanley & McNeil (1982) standard error of the AUC, as a normal interval in [0, 1]."""
    q1, q2 = value / (2 - value), 2 * value**2 / (1 + value)
    variance = (value * (1 - value) + (n1 - 1) * (q1 - value**2) + (n0 - 1) * (q2 - value**2)) / (
        n1 * n0
    )
    half = float(norm.ppf(1 - (1 - confidence) / 2)) * math.sqrt(max(variance, 0.0))
    return Interval(low=max(0.0, value - half), high=min(1.0, value + half), confidence=confidence)


def _slice(
    feature: Feature,
    value: str,
    attack: str,
    scores: np.ndarray,
    is_member: np.ndarray,
    confidence: float,
    min_records: int,
) -> SliceMetrics:
    members, non_members = scores[is_member], scores[~is_member]
    n1, n0 = int(members.size), int(non_members.size)
    result = SliceMetrics(
        feature=feature,
        value=value,
        attack=attack,
        n_members=n1,
        n_non_members=n0,
    )
    if n1 < min_records or n0 < min_records:
        return result
    area = auc(members, non_members)
    fpr, tpr, _ = roc_curve(members, non_members)
    return result.model_copy(
        update={
            "auc": area,
            "auc_ci": _auc_interval(area, n1, n0, confidence),
            "tpr_at_1pct_fpr": tpr_at_fpr(fpr, tpr, SLICE_FPR),
            "tpr_resolved": n0 * SLICE_FPR >= 1 - 1e-9,
        }
    )


def slice_metrics(
    scores: dict[str, np.ndarray],
    is_member: np.ndarray,
    *,
    labels: Sequence[str | int | None] | None = None,
    correct: np.ndarray | None = None,
    confidence: float = 0.95,
    min_records: int = MIN_SLICE_RECORDS,
) -> Slices | None:
    """AUC and TPR at 1% FPR of every attack by true class and by correct/incorrect prediction.

    labels: each record's true class (None entries are left out of the class slices);
    correct: whether the model classified each record correctly. Returns None when neither
    gives a slice (a language model: no labels, no predictions).
    """
    truth = np.asarray(is_member, dtype=bool).ravel()
    slices: list[tuple[Feature, str, np.ndarray]] = []
    n_classes = 0
    if labels is not None:
        if len(labels) != truth.size:
            raise ValueError(f"{len(labels)} labels but {truth.size} membership flags")
        names = np.array(["" if label is None else str(label) for label in labels], dtype=object)
        present = [name for name in set(names.tolist()) if name != ""]
        n_classes = len(present)
        # Largest first, then by name, so which classes are kept never depends on set order.
        present.sort(key=lambda name: (-int((names == name).sum()), name))
        for name in present[:MAX_CLASS_SLICES]:
            slices.append(("class", name, names == name))
    if correct is not None:
        right = np.asarray(correct, dtype=bool).ravel()
        if right.shape != truth.shape:
            raise ValueError(f"{right.size} correctness flags but {truth.size} membership flags")
        slices += [("correctness", "correct", right), ("correctness", "incorrect", ~right)]
    if not slices:
        return None
    results = [
        _slice(feature, value, attack, values[mask], truth[mask], confidence, min_records)
        for feature, value, mask in slices
        for attack, values in scores.items()
    ]
    measured = [r for r in results if r.feature == "class" and r.auc is not None]
    worst = max(measured, key=lambda r: (r.auc or 0.0, r.tpr_at_1pct_fpr or 0.0), default=None)
    return Slices(
        min_records=min_records,
        results=results,
        most_vulnerable_class=worst.value if worst else None,
        most_vulnerable_attack=worst.attack if worst else None,
        n_classes=n_classes,
        n_classes_sliced=min(n_classes, MAX_CLASS_SLICES),
    )
