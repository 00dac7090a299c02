"""Tests for ROC, AUC, TPR-at-FPR and the bootstrap in attacks.metrics."""

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from attacks import metrics
from attacks.metrics import (
    auc,
    downsample_roc,
    evaluate_attack,
    roc_curve,
    tpr_at_fpr,
    utility,
)


def _scores(seed: int, n_members: int, n_non_members: int, shift: float = 0.5):
    rng = np.random.default_rng(seed)
    # Rounded to one decimal so that many scores tie, within and across the two groups.
    members = np.round(rng.normal(shift, 1, n_members), 1)
    non_members = np.round(rng.normal(0, 1, n_non_members), 1)
    return members, non_members


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties(seed):
    members, non_members = _scores(seed, 300 + seed * 17, 250)
    labels = np.r_[np.ones(members.size), np.zeros(non_members.size)]
    expected = roc_auc_score(labels, np.r_[members, non_members])
    assert auc(members, non_members) == pytest.approx(expected, abs=1e-12)


def test_auc_of_all_ties_is_one_half():
    assert auc(np.zeros(5), np.zeros(7)) == 0.5


def test_tpr_at_fpr_on_hand_built_roc():
    fpr = np.array([0.0, 0.0, 0.005, 0.01, 0.02, 0.5, 1.0])
    tpr = np.array([0.0, 0.1, 0.2, 0.3, 0.6, 0.9, 1.0])
    assert tpr_at_fpr(fpr, tpr, 0.001) == 0.1
    assert tpr_at_fpr(fpr, tpr, 0.01) == 0.3  # the point exactly at the target counts
    assert tpr_at_fpr(fpr, tpr, 0.015) == 0.3
    assert tpr_at_fpr(fpr, tpr, 1.0) == 1.0
    assert tpr_at_fpr(np.array([0.2, 1.0]), np.array([0.5, 1.0]), 0.1) == 0.0


def test_tpr_at_fpr_counts_a_rate_of_exactly_the_target():
    # 3 of 300 non-members flagged is an FPR of 1%, even if 3/300 rounds above 0.01.
    non_members = np.arange(300.0)
    members = np.array([296.5, 1000.0])
    fpr, tpr, _ = roc_curve(members, non_members)
    assert tpr_at_fpr(fpr, tpr, 0.01) == 1.0
    assert tpr_at_fpr(fpr, tpr, 0.005) == 0.5


def test_roc_curve_matches_direct_counts():
    members, non_members = _scores(1, 40, 60)
    fpr, tpr, thresholds = roc_curve(members, non_members)
    for f, t, threshold in zip(fpr, tpr, thresholds, strict=True):
        assert f == np.mean(non_members >= threshold)
        assert t == np.mean(members >= threshold)


def _big_roc():
    rng = np.random.default_rng(2)
    fpr, tpr, _ = roc_curve(rng.normal(1, 1, 5000), rng.normal(0, 1, 5000))
    return fpr, tpr


def test_downsample_roc_keeps_ends_low_fpr_and_monotonicity():
    fpr, tpr = _big_roc()
    assert fpr.size > 1000
    small_fpr, small_tpr = downsample_roc(fpr, tpr, max_points=200)
    assert small_fpr.size <= 200
    assert (small_fpr[0], small_tpr[0]) == (0.0, 0.0)
    assert (small_fpr[-1], small_tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(small_fpr) >= 0) and np.all(np.diff(small_tpr) >= 0)
    # Every kept point is a point of the original curve.
    original = set(zip(fpr.tolist(), tpr.tolist(), strict=True))
    assert all(p in original for p in zip(small_fpr, small_tpr, strict=True))
    # The low-FPR end survives: TPR at each decade of FPR is unchanged.
    for target in (1 / 5000, 1e-3, 1e-2, 1e-1):
        assert tpr_at_fpr(small_fpr, small_tpr, target) == tpr_at_fpr(fpr, tpr, target)
    # Below 1% FPR a linear grid would keep about 2 points; the log grid keeps most of the 49.
    low = np.unique(small_fpr[(small_fpr > 0) & (small_fpr < 0.01)])
    assert low.size >= 30


def test_downsample_roc_leaves_short_curves_alone():
    fpr, tpr = np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.7, 1.0])
    small_fpr, small_tpr = downsample_roc(fpr, tpr)
    np.testing.assert_array_equal(small_fpr, fpr)
    np.testing.assert_array_equal(small_tpr, tpr)


def test_evaluate_attack_point_estimates_match_independent_computations():
    members, non_members = _scores(4, 700, 300, shift=1.0)
    result = evaluate_attack("loss", members, non_members, n_bootstrap=200)
    labels = np.r_[np.ones(members.size), np.zeros(non_members.size)]
    scores = np.r_[members, non_members]
    assert result.auc == pytest.approx(roc_auc_score(labels, scores))
    assert result.auc_ci.low <= result.auc <= result.auc_ci.high
    assert (result.n_members, result.n_non_members) == (700, 300)
    assert result.min_measurable_fpr == pytest.approx(1 / 300)
    # Advantage: best threshold's TPR - FPR, counted directly.
    advantage = max(np.mean(members >= t) - np.mean(non_members >= t) for t in np.unique(scores))
    assert result.advantage == pytest.approx(advantage)
    for point in result.tpr_at_fpr:
        best = max(
            (
                np.mean(members >= t)
                for t in np.unique(scores)
                if np.mean(non_members >= t) <= point.fpr + 1e-12
            ),
            default=0.0,
        )
        assert point.tpr == pytest.approx(best)
        assert point.ci_low <= point.ci_high
    # 0.1% of 300 non-members is less than one record: that TPR is not resolved.
    assert [p.resolved for p in result.tpr_at_fpr] == [False, True, True]


def test_bootstrap_statistics_match_a_naive_recomputation(monkeypatch):
    """Each resample's AUC and TPR equal sklearn's on the resampled scores themselves."""
    members, non_members = _scores(5, 80, 120, shift=0.8)
    drawn = []
    original = metrics._resample_counts

    def recording(rng, n, size):
        counts = original(rng, n, size)
        drawn.append(counts)
        return counts

    monkeypatch.setattr(metrics, "_resample_counts", recording)
    fprs = (0.01, 0.05, 0.3)
    auc_boot, tpr_boot = metrics._bootstrap(members, non_members, fprs, 30, seed=0)
    member_counts, non_member_counts = drawn
    for b in range(30):
        resampled_members = np.repeat(np.sort(members), member_counts[b])
        resampled_non_members = np.repeat(np.sort(non_members), non_member_counts[b])
        assert resampled_members.size == members.size
        labels = np.r_[np.ones(members.size), np.zeros(non_members.size)]
        scores = np.r_[resampled_members, resampled_non_members]
        assert auc_boot[b] == pytest.approx(roc_auc_score(labels, scores))
        fpr, tpr, _ = roc_curve(resampled_members, resampled_non_members)
        for j, target in enumerate(fprs):
            assert tpr_boot[j][b] == pytest.approx(tpr_at_fpr(fpr, tpr, target))


def test_bootstrap_interval_covers_the_true_auc_usually():
    # Normal scores with shift 1: true AUC = Phi(1 / sqrt(2)).
    from scipy.stats import norm

    true_auc = norm.cdf(1 / np.sqrt(2))
    covered = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        result = evaluate_attack(
            "x", rng.normal(1, 1, 300), rng.normal(0, 1, 300), n_bootstrap=300, seed=seed
        )
        covered += result.auc_ci.low <= true_auc <= result.auc_ci.high
    assert covered >= 16


def test_evaluate_attack_at_full_bootstrap_brackets_the_auc():
    members, non_members = _scores(6, 1000, 1000)
    result = evaluate_attack("x", members, non_members, n_bootstrap=1000)
    assert result.auc_ci.low < result.auc < result.auc_ci.high


def test_evaluate_attack_rejects_bad_scores():
    with pytest.raises(ValueError, match="NaN"):
        evaluate_attack("x", np.array([1.0, np.nan]), np.array([0.0]))
    with pytest.raises(ValueError, match="at least one"):
        evaluate_attack("x", np.array([]), np.array([0.0]))


def test_utility_accuracy_with_its_exact_interval():
    correct = np.array([True] * 90 + [False] * 10 + [True] * 60 + [False] * 40)
    on_non_members = utility(correct, 100)
    assert (on_non_members.member_accuracy, on_non_members.non_member_accuracy) == (0.9, 0.6)
    assert on_non_members.evaluated_on == "non-members" and on_non_members.n_evaluated == 100
    expected = binomtest(60, 100).proportion_ci(confidence_level=0.95, method="exact")
    assert on_non_members.accuracy == 0.6
    assert on_non_members.accuracy_ci.low == pytest.approx(expected.low)
    assert on_non_members.accuracy_ci.high == pytest.approx(expected.high)
    evaluation = np.array([True] * 7 + [False] * 3)
    on_evaluation = utility(correct, 100, evaluation_correct=evaluation, confidence=0.9)
    assert (on_evaluation.evaluated_on, on_evaluation.n_evaluated) == ("evaluation", 10)
    assert on_evaluation.accuracy == 0.7 and on_evaluation.accuracy_ci.confidence == 0.9
    # Ten records pin accuracy down far less than a hundred do.
    width = on_evaluation.accuracy_ci.high - on_evaluation.accuracy_ci.low
    assert width > on_non_members.accuracy_ci.high - on_non_members.accuracy_ci.low
    with pytest.raises(ValueError, match="empty"):
        utility(correct, 100, evaluation_correct=np.array([], dtype=bool))
