"""Membership-inference metrics reported honestly: ROC, AUC, TPR at low FPR, with bootstrap CIs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn import metrics as sk_metrics

from attacks.report import LOW_FPR, AttackMetrics, Interval, RocCurve, TprAtFpr, Utility

# ROC FPRs are ratios k/n; this relative slack keeps a rounded k/n from counting as above
# a target it equals (e.g. 3/300 against 1%).
_FPR_SLACK = 1e-9
# Bootstrap work is done in chunks of about this many resampled counts to bound memory.
_BOOTSTRAP_CHUNK = 4_000_000


def roc_curve(
    member_scores: np.ndarray, non_member_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ROC point (fpr, tpr, thresholds); a record is flagged when score >= threshold."""
    members, non_members = _checked(member_scores, non_member_scores)
    y_true = np.concatenate([np.ones(members.size), np.zeros(non_members.size)])
    y_score = np.concatenate([members, non_members])
    fpr, tpr, thresholds = sk_metrics.roc_curve(y_true, y_score, drop_intermediate=False)
    return fpr, tpr, thresholds


def auc(member_scores: np.ndarray, non_member_scores: np.ndarray) -> float:
    """P(member score > non-member score), ties counting 1/2: the Mann–Whitney statistic."""
    members, non_members = _checked(member_scores, non_member_scores)
    ranks = rankdata(np.concatenate([members, non_members]))
    n1, n0 = members.size, non_members.size
    u_statistic = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    return float(u_statistic / (n1 * n0))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target_fpr: float) -> float:
    """Best TPR among ROC points whose FPR does not exceed the target (0.0 if none does)."""
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    allowed = fpr <= _with_slack(target_fpr)
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def downsample_roc(
    fpr: np.ndarray, tpr: np.ndarray, max_points: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` ROC points on a log-spaced FPR grid, so log-log plots keep the
    low-FPR end; the first and last points, the best point at FPR 0 and the best point at
    each power of ten are always kept."""
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    if fpr.shape != tpr.shape or fpr.ndim != 1 or fpr.size == 0:
        raise ValueError("fpr and tpr must be non-empty 1-d arrays of the same length")
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    if fpr.size <= max_points:
        return fpr.copy(), tpr.copy()
    positive = fpr[fpr > 0]
    grid = [0.0]
    if positive.size:
        # Decades too, so TPR at 0.1%, 1%, 10% FPR reads the same off the small curve.
        budget = max_points - 4
        decades = 10.0 ** np.arange(np.ceil(np.log10(positive.min())), 0)
        decades = decades[max(decades.size - budget, 0) :]
        log_grid = np.geomspace(positive.min(), 1.0, budget - decades.size)
        grid += [positive.min(), *decades, *log_grid]
    # For each grid FPR, the last ROC point not beyond it: the highest TPR at that FPR.
    chosen = np.searchsorted(fpr, _with_slack(np.asarray(grid)), side="right") - 1
    keep = np.unique(np.concatenate([[0, fpr.size - 1], chosen.clip(0)]))
    return fpr[keep], tpr[keep]


def evaluate_attack(
    name: str,
    member_scores: np.ndarray,
    non_member_scores: np.ndarray,
    *,
    fprs: Sequence[float] = (LOW_FPR, 0.01, 0.1),
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AttackMetrics:
    """All metrics for one attack's scores; members and non-members are bootstrapped
    separately (their counts are fixed by the audit design) with percentile intervals."""
    members, non_members = _checked(member_scores, non_member_scores)
    if n_bootstrap < 1:
        raise ValueError("n_bootstrap must be at least 1")
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
    if any(not 0 < target <= 1 for target in fprs):
        raise ValueError("target FPRs must lie in (0, 1]")
    n1, n0 = members.size, non_members.size

    fpr, tpr, _ = roc_curve(members, non_members)
    auc_boot, tpr_boot = _bootstrap(members, non_members, fprs, n_bootstrap, seed)
    tail = (1 - confidence) / 2

    def interval(samples: np.ndarray) -> tuple[float, float]:
        low, high = np.quantile(samples, [tail, 1 - tail])
        return float(low), float(high)

    auc_low, auc_high = interval(auc_boot)
    points = []
    for target, samples in zip(fprs, tpr_boot, strict=True):
        low, high = interval(samples)
        points.append(
            TprAtFpr(
                fpr=float(target),
                tpr=tpr_at_fpr(fpr, tpr, target),
                ci_low=low,
                ci_high=high,
                resolved=_with_slack(target * n0) >= 1,
            )
        )
    roc_fpr, roc_tpr = downsample_roc(fpr, tpr)
    return AttackMetrics(
        name=name,
        n_members=n1,
        n_non_members=n0,
        auc=auc(members, non_members),
        auc_ci=Interval(low=auc_low, high=auc_high, confidence=confidence),
        tpr_at_fpr=points,
        advantage=float(np.max(tpr - fpr)),
        min_measurable_fpr=1.0 / n0,
        roc=RocCurve(fpr=roc_fpr.tolist(), tpr=roc_tpr.tolist()),
        n_bootstrap=n_bootstrap,
    )


def _bootstrap(
    members: np.ndarray,
    non_members: np.ndarray,
    fprs: Sequence[float],
    n_bootstrap: int,
    seed: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """AUC and TPR-at-FPR for each resample, from resampling counts over the sorted scores:
    cumulative counts give each member's number of lower and tied non-members at once."""
    rng = np.random.default_rng(seed)
    members, non_members = np.sort(members), np.sort(non_members)
    n1, n0 = members.size, non_members.size
    below = np.searchsorted(non_members, members, side="left")
    at_or_below = np.searchsorted(non_members, members, side="right")
    # Allowed false positives at each target FPR; TPR counts members above the next one.
    allowed_fp = [int(np.floor(_with_slack(target * n0))) for target in fprs]

    auc_parts: list[np.ndarray] = []
    tpr_parts: list[list[np.ndarray]] = [[] for _ in fprs]
    chunk = max(1, _BOOTSTRAP_CHUNK // max(n1, n0))
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        member_counts = _resample_counts(rng, n1, size)
        cum_non = _cumulative(_resample_counts(rng, n0, size))
        cum_members = _cumulative(member_counts)
        wins = 0.5 * (cum_non[:, below] + cum_non[:, at_or_below])
        auc_parts.append((member_counts * wins).sum(axis=1) / (n1 * n0))
        for parts, k in zip(tpr_parts, allowed_fp, strict=True):
            if k >= n0:
                parts.append(np.ones(size))
                continue
            # The (k+1)-th largest resampled non-member score: members strictly above it
            # can be flagged with at most k false positives.
            cutoff_index = (cum_non[:, 1:] >= n0 - k).argmax(axis=1)
            cutoff = non_members[cutoff_index]
            not_above = np.searchsorted(members, cutoff, side="right")
            parts.append((n1 - cum_members[np.arange(size), not_above]) / n1)
    return np.concatenate(auc_parts), [np.concatenate(parts) for parts in tpr_parts]


def _with_slack(value):
    return value * (1 + _FPR_SLACK)


def _resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """How often each of n items is drawn, in `size` resamples of n with replacement."""
    draws = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
    return np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)


def _cumulative(counts: np.ndarray) -> np.ndarray:
    """Row-wise cumulative counts with a leading zero column."""
    out = np.zeros((counts.shape[0], counts.shape[1] + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=out[:, 1:])
    return out


def _checked(
    member_scores: np.ndarray, non_member_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    members = np.asarray(member_scores, dtype=np.float64).ravel()
    non_members = np.asarray(non_member_scores, dtype=np.float64).ravel()
    if members.size == 0 or non_members.size == 0:
        raise ValueError("need at least one member and one non-member score")
    if not (np.all(np.isfinite(members)) and np.all(np.isfinite(non_members))):
        raise ValueError("scores contain NaN or infinite values")
    return members, non_members


def utility(
    correct: np.ndarray,
    n_members: int,
    *,
    evaluation_correct: np.ndarray | None = None,
    confidence: float = 0.95,
) -> Utility:
    """Accuracy next to leakage, with its exact (Clopper-Pearson) interval.

    `correct` covers the audited records, members first. The headline accuracy is on the
    evaluation records when given, else on the non-members: records the model never saw.
    """
    from attacks.privacy.empirical import clopper_pearson

    correct = np.asarray(correct, dtype=bool)
    members, non_members = correct[:n_members], correct[n_members:]
    if members.size == 0 or non_members.size == 0:
        raise ValueError("utility needs at least one member and one non-member")
    held_out = non_members if evaluation_correct is None else np.asarray(evaluation_correct, bool)
    if held_out.size == 0:
        raise ValueError("the evaluation set is empty")
    hits = int(np.count_nonzero(held_out))
    low, high = clopper_pearson(hits, held_out.size, confidence)
    return Utility(
        member_accuracy=float(members.mean()),
        non_member_accuracy=float(non_members.mean()),
        n_members=int(members.size),
        n_non_members=int(non_members.size),
        accuracy=hits / held_out.size,
        accuracy_ci=Interval(low=low, high=high, confidence=confidence),
        n_evaluated=int(held_out.size),
        evaluated_on="non-members" if evaluation_correct is None else "evaluation",
    )
