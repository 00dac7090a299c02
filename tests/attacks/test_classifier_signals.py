"""Tests for per-record signals and the threshold attacks built on them."""

import math

import numpy as np
import pytest

from attacks.mia import ATTACKS, AttackInputs, ThresholdAttack, get_attack
from attacks.signals import SIGNAL_DIRECTION, classifier_signals


def test_confidence_is_finite_and_ordered_at_extreme_logits():
    logits = np.array([[60.0, -60.0], [80.0, -80.0], [-60.0, 60.0]], dtype=np.float32)
    signals = classifier_signals(logits, np.array([0, 0, 0]))
    confidence = signals["confidence"]
    assert np.all(np.isfinite(confidence))
    # p_y rounds to 1 in float32, yet the logit-scaled confidence keeps the margin.
    np.testing.assert_allclose(confidence, [120.0, 160.0, -120.0])
    assert np.all(np.isfinite(signals["loss"]))
    assert signals["loss"][0] > signals["loss"][1] > 0  # still ordered, not rounded to 0
    assert signals["loss"][2] == pytest.approx(120.0)


def test_signals_match_float64_probabilities_at_moderate_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(50, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=50)
    signals = classifier_signals(logits, labels)
    for i in range(50):
        row = logits[i].astype(np.float64)
        p = np.exp(row) / np.exp(row).sum()
        p_y = p[labels[i]]
        assert signals["confidence"][i] == pytest.approx(math.log(p_y / (1 - p_y)), rel=1e-9)
        assert signals["loss"][i] == pytest.approx(-math.log(p_y), rel=1e-9)
        assert signals["correct"][i] == (int(np.argmax(row)) == labels[i])
    assert signals["correct"].dtype == bool


def test_signals_reject_bad_shapes_and_labels():
    with pytest.raises(ValueError):
        classifier_signals(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError):
        classifier_signals(np.zeros((2, 2)), np.array([0, 2]))
    with pytest.raises(ValueError):
        classifier_signals(np.zeros((2, 2)), np.array([0.0, 1.0]))


def test_threshold_attack_scores_point_towards_members():
    assert SIGNAL_DIRECTION["loss"] == -1 and SIGNAL_DIRECTION["confidence"] == +1
    inputs = AttackInputs(
        target={"loss": np.array([0.1, 2.0]), "confidence": np.array([3.0, -1.0])}
    )
    # Record 0 has low loss and high confidence: both attacks must rank it as the member.
    for name in ("loss", "confidence"):
        scores = get_attack(name).score(inputs)
        assert scores[0] > scores[1]
    np.testing.assert_array_equal(ThresholdAttack("loss").score(inputs), [-0.1, -2.0])


def test_registry_names_and_errors():
    assert set(ATTACKS) >= {"loss", "confidence"}
    for name, factory in ATTACKS.items():
        attack = factory()
        assert attack.name == name
    with pytest.raises(KeyError, match="loss"):
        get_attack("lira-online")
    with pytest.raises(KeyError, match="confidence"):
        ThresholdAttack("confidence").score(AttackInputs(target={"loss": np.zeros(2)}))
    with pytest.raises(ValueError):
        ThresholdAttack("entropy")
