"""Tests for LiRA on synthetic signals whose membership effect is known by construction."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from attacks.mia import AttackInputs, LiRA, get_attack
from attacks.reference import inclusion_masks


def _world(seed: int, n: int = 2000, k: int = 16, shift: float = 2.0):
    """Each record has its own difficulty b_i (spread 3); a model's confidence on it is
    N(b_i, 1), plus `shift` when the model trained on it. Knowing b_i is what LiRA buys."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 3, n)
    member = rng.random(n) < 0.5
    reference_in = inclusion_masks(n, k, seed=seed)
    references = difficulty + shift * reference_in + rng.normal(0, 1, (k, n))
    target = difficulty + shift * member + rng.normal(0, 1, n)
    inputs = AttackInputs(
        target={"confidence": target},
        references={"confidence": references},
        reference_in=reference_in,
    )
    return inputs, member


@pytest.mark.parametrize("name", ["lira", "lira-global", "lira-offline", "lira-offline-global"])
def test_lira_recovers_the_per_record_calibration(name):
    inputs, member = _world(0)
    scores = get_attack(name).score(inputs)
    assert scores.shape == member.shape and np.all(np.isfinite(scores))
    auc = roc_auc_score(member, scores)
    raw = roc_auc_score(member, inputs.target["confidence"])
    # Knowing b_i exactly gives AUC = Phi(2 / sqrt(2)) = 0.92; the raw signal only about 0.68.
    assert raw < 0.72
    assert auc > 0.85


def test_online_and_offline_scores_follow_the_formulas():
    # One record: IN values 3 and 5, OUT values 0 and 2; target value 3.5.
    inputs = AttackInputs(
        target={"confidence": np.array([3.5])},
        references={"confidence": np.array([[3.0], [5.0], [0.0], [2.0]])},
        reference_in=np.array([[True], [True], [False], [False]]),
    )
    sd = np.sqrt(2.0)  # both kinds: sample variance of two values 2 apart
    online = LiRA(online=True).score(inputs)
    expected = norm.logpdf(3.5, 4.0, sd) - norm.logpdf(3.5, 1.0, sd)
    assert online[0] == pytest.approx(expected)
    offline = LiRA(online=False).score(inputs)
    assert offline[0] == pytest.approx(-norm.logsf(3.5, 1.0, sd))


def test_global_variance_pools_within_record_spread():
    # Record 0: OUT values 0, 2 (squares 2); record 1: OUT values 10, 10, 13 (squares 6).
    references = np.array([[0.0, 10.0], [2.0, 10.0], [np.nan, 13.0]])
    mask_out = ~np.isnan(references)
    references = np.nan_to_num(references)
    inputs = AttackInputs(
        target={"confidence": np.array([1.0, 12.0])},
        references={"confidence": references},
        reference_in=~mask_out,
    )
    pooled = (2.0 + 6.0) / (5 - 2)  # 5 values, 2 record means
    scores = LiRA(online=False, global_variance=True).score(inputs)
    np.testing.assert_allclose(scores, -norm.logsf([1.0, 12.0], [1.0, 11.0], np.sqrt(pooled)))
    # Per record: record 0 has its own variance (2), record 1 its own (3).
    scores = LiRA(online=False).score(inputs)
    np.testing.assert_allclose(scores, -norm.logsf([1.0, 12.0], [1.0, 11.0], np.sqrt([2.0, 3.0])))


def test_one_reference_model_falls_back_to_the_gap_and_a_shared_variance():
    # K = 1: record 0 is IN (value 5), record 1 OUT (value 1); the IN - OUT gap is 4.
    inputs = AttackInputs(
        target={"confidence": np.array([4.0, 2.0])},
        references={"confidence": np.array([[5.0, 1.0]])},
        reference_in=np.array([[True, False]]),
    )
    sd = np.sqrt(np.var([5.0, 1.0]))  # no within-record spread: the spread of all values
    # Record 0: IN mean 5, OUT mean 5 - 4 = 1; record 1: OUT mean 1, IN mean 1 + 4 = 5.
    expected = norm.logpdf([4.0, 2.0], [5.0, 5.0], sd) - norm.logpdf([4.0, 2.0], [1.0, 1.0], sd)
    for attack in (LiRA(online=True), LiRA(online=True, global_variance=True)):
        np.testing.assert_allclose(attack.score(inputs), expected)
    # Offline: record 0 has no OUT value and is compared with the mean of all OUT values; one
    # OUT value in all leaves no spread to measure, so the variance is 1 (it only scales).
    offline = LiRA(online=False).score(inputs)
    np.testing.assert_allclose(offline, -norm.logsf([4.0, 2.0], 1.0, 1.0))


def test_equal_reference_values_do_not_make_infinite_scores():
    inputs = AttackInputs(
        target={"confidence": np.array([30.0, 29.0, -5.0])},
        references={"confidence": np.full((4, 3), 30.0)},
        reference_in=np.array([[True] * 3, [True] * 3, [False] * 3, [False] * 3]),
    )
    for name in ("lira", "lira-offline", "lira-global", "lira-offline-global"):
        scores = get_attack(name).score(inputs)
        assert np.all(np.isfinite(scores)), name


def test_online_needs_in_models_and_offline_ignores_them():
    inputs, _ = _world(1, n=300, k=4)
    offline = LiRA(online=False)
    expected = offline.score(inputs)
    # Changing the IN values must not change offline scores.
    in_values = inputs.references["confidence"].copy()
    in_values[inputs.reference_in] += 100.0
    moved = AttackInputs(
        target=inputs.target,
        references={"confidence": in_values},
        reference_in=inputs.reference_in,
    )
    np.testing.assert_array_equal(offline.score(moved), expected)
    no_in = AttackInputs(target=inputs.target, references=inputs.references)
    with pytest.raises(ValueError, match="offline"):
        LiRA(online=True).score(no_in)
    with pytest.raises(ValueError, match="reference models"):
        LiRA().score(AttackInputs(target=inputs.target))


def test_names():
    assert LiRA(online=True).name == "lira"
    assert LiRA(online=False).name == "lira-offline"
    assert LiRA(online=True, global_variance=True).name == "lira-global"
    assert LiRA(online=False, global_variance=True).name == "lira-offline-global"
