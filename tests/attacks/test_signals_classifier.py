"""Tests for the classifier signals behind the threshold, LiRA and RMIA attacks."""

import math

import numpy as np
import pytest

from attacks.mia import ATTACKS, AttackInputs, get_attack
from attacks.signals import SIGNAL_DIRECTION, classifier_signals

THRESHOLD_SIGNALS = ("loss", "confidence", "probability", "hinge", "modified_entropy")


def _by_hand(row: np.ndarray, label: int) -> dict[str, float]:
    """Every signal from the textbook formulas, one record at a time in float64."""
    p = np.exp(row - row.max())
    p /= p.sum()
    others = [i for i in range(row.size) if i != label]
    return {
        "loss": -math.log(p[label]),
        "confidence": math.log(p[label]) - math.log(1 - p[label]),
        "probability": p[label],
        "hinge": row[label] - max(row[i] for i in others),
        "modified_entropy": -(1 - p[label]) * math.log(p[label])
        - sum(p[i] * math.log(1 - p[i]) for i in others),
    }


def test_signals_match_the_formulas_at_moderate_logits():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2.5, size=(60, 5))
    labels = rng.integers(0, 5, size=60)
    signals = classifier_signals(logits, labels)
    for i in range(60):
        expected = _by_hand(logits[i], int(labels[i]))
        for name, value in expected.items():
            assert signals[name][i] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert signals["probability"] == pytest.approx(np.exp(-signals["loss"]), rel=1e-12)


def test_signals_stay_finite_and_ordered_at_extreme_logits():
    logits = np.array(
        [
            [60.0, -60.0, 0.0],  # sharp and right
            [80.0, -80.0, 0.0],  # sharper and right
            [-60.0, 60.0, 0.0],  # sharp and wrong
            [1000.0, -1000.0, 3.0],  # beyond float range once exponentiated
            [-1000.0, 1000.0, 3.0],
        ]
    )
    signals = classifier_signals(logits, np.array([0, 0, 0, 0, 0]))
    for name in THRESHOLD_SIGNALS:
        assert np.all(np.isfinite(signals[name])), name
    np.testing.assert_allclose(signals["hinge"], [60, 80, -120, 997, -2000])
    mentr = signals["modified_entropy"]
    assert np.all(mentr >= 0)
    # Sharp and wrong: (1 - p_y)(-log p_y) = 120, plus p_1 (-log(1 - p_1)) = -log(e^-120 + e^-60)
    assert mentr[2] == pytest.approx(180.0)
    assert mentr[4] == pytest.approx(2000.0 + 997.0)
    # Sharp and right is near zero but still ordered: the sharper record is more member-like.
    assert 0 < mentr[1] < mentr[0] < 1e-20
    assert signals["probability"][2] == pytest.approx(math.exp(-120.0))
    assert signals["probability"][4] == 0.0  # e^-2000 underflows; the log-scale signals keep it


def test_modified_entropy_of_two_classes_has_a_closed_form():
    # With two classes p_other = 1 - p_y, so Mentr = -2 (1 - p_y) log p_y.
    logits = np.array([[2.0, -1.0], [0.0, 0.0], [-3.0, 4.0]])
    signals = classifier_signals(logits, np.array([0, 1, 0]))
    p = signals["probability"]
    np.testing.assert_allclose(signals["modified_entropy"], -2 * (1 - p) * np.log(p), rtol=1e-12)


def test_every_signal_points_towards_members():
    assert set(SIGNAL_DIRECTION) == set(THRESHOLD_SIGNALS)
    # Record 0 is fitted (sharp and right); record 1 is not (unsure, leaning wrong).
    logits = np.array([[6.0, -2.0, -1.0], [0.5, 1.0, 0.0]])
    signals = classifier_signals(logits, np.array([0, 0]))
    inputs = AttackInputs(target=signals)
    for name in THRESHOLD_SIGNALS:
        assert SIGNAL_DIRECTION[name] * signals[name][0] > SIGNAL_DIRECTION[name] * signals[name][1]
        scores = get_attack(name).score(inputs)
        assert scores[0] > scores[1], name
        assert not get_attack(name).needs_references


def test_registry_holds_a_threshold_attack_per_signal_and_the_reference_attacks():
    expected = {
        *THRESHOLD_SIGNALS,
        "lira",
        "lira-offline",
        "lira-global",
        "lira-offline-global",
        "rmia",
        "rmia-offline",
    }
    assert expected <= set(ATTACKS)
    for name in expected:
        attack = get_attack(name)
        assert attack.name == name
        assert attack.needs_references == name.startswith(("lira", "rmia"))
