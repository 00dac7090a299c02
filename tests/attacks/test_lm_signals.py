"""Tests for the causal-LM signals against their formulas on hand-built token distributions."""

import math
import zlib

import numpy as np
import pytest
import torch

from attacks.lm_signals import LM_SIGNAL_DIRECTION, TokenStats, lm_signals, lowest_mean
from attacks.targets import causal_lm
from attacks.targets.causal_lm import SIGMA_EPSILON, token_statistics_from_logits

NEG_INF = float("-inf")

# Two records over a vocabulary of 4; the second is right-padded after 4 real tokens and has a
# vocabulary entry masked to -inf, as some models do, to check that 0 * log 0 counts as 0.
LOGITS = [
    [
        [2.0, 0.5, -1.0, 0.0],
        [0.1, 0.2, 0.3, 0.4],
        [3.0, -2.0, 1.0, 0.5],
        [-1.0, 4.0, 0.0, 2.0],
        [0.0, 0.0, 0.0, 9.0],
    ],
    [
        [1.0, NEG_INF, 2.0, 0.0],
        [0.0, 5.0, -3.0, 1.0],
        [2.5, 2.5, NEG_INF, -0.5],
        [7.0, 7.0, 7.0, 7.0],  # pad position: its logits must not matter
        [7.0, 7.0, 7.0, 7.0],
    ],
]
INPUT_IDS = [[1, 0, 3, 2, 1], [2, 2, 3, 0, 0]]
ATTENTION = [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]


def _expected_statistics(row_logits, row_ids, n_real):
    """log p(x_t), mu_t, sigma_t by the definitions, in plain Python."""
    log_probs, mus, sigmas = [], [], []
    for t in range(1, n_real):
        scores = row_logits[t - 1]
        total = sum(math.exp(score) for score in scores if score != NEG_INF)
        log_p = [score - math.log(total) if score != NEG_INF else None for score in scores]
        mu = sum(math.exp(lp) * lp for lp in log_p if lp is not None)
        second = sum(math.exp(lp) * lp * lp for lp in log_p if lp is not None)
        log_probs.append(log_p[row_ids[t]])
        mus.append(mu)
        sigmas.append(math.sqrt(second - mu * mu))
    return log_probs, mus, sigmas


def _lowest_mean(values, k):
    count = max(1, math.floor(k * len(values) + 1e-9))
    return sum(sorted(values)[:count]) / count


def _hand_built_stats():
    rows = token_statistics_from_logits(
        torch.tensor(LOGITS, dtype=torch.float64),
        torch.tensor(INPUT_IDS),
        torch.tensor(ATTENTION),
    )
    texts = ["first record", "second"]
    return rows, TokenStats.from_arrays(texts, *zip(*rows, strict=True))


def test_token_statistics_from_logits_match_the_definitions():
    rows, _ = _hand_built_stats()
    assert len(rows) == 2
    for row, (got, n_real) in enumerate(zip(rows, (5, 4), strict=True)):
        expected = _expected_statistics(LOGITS[row], INPUT_IDS[row], n_real)
        for got_array, expected_values in zip(got, expected, strict=True):
            assert got_array.dtype == np.float64
            np.testing.assert_allclose(got_array, expected_values, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [0.2, 0.5, 1.0])
def test_min_k_and_min_k_plus_plus_match_their_formulas(k):
    _, stats = _hand_built_stats()
    signals = lm_signals(stats, k=k)
    for row, n_real in enumerate((5, 4)):
        log_probs, mus, sigmas = _expected_statistics(LOGITS[row], INPUT_IDS[row], n_real)
        normalised = [
            (lp - mu) / sigma for lp, mu, sigma in zip(log_probs, mus, sigmas, strict=True)
        ]
        assert signals["min_k"][row] == pytest.approx(_lowest_mean(log_probs, k), rel=1e-12)
        assert signals["min_k_plus_plus"][row] == pytest.approx(
            _lowest_mean(normalised, k), rel=1e-12
        )
        assert signals["loss"][row] == pytest.approx(-sum(log_probs) / len(log_probs), rel=1e-12)


def test_left_padding_is_ignored_too():
    garbage = [9.0, -9.0, 9.0, -9.0]
    logits = torch.tensor([[garbage, garbage, *LOGITS[0][:3]]], dtype=torch.float64)
    rows = token_statistics_from_logits(
        logits, torch.tensor([[3, 3, 1, 0, 3]]), torch.tensor([[0, 0, 1, 1, 1]])
    )
    expected = _expected_statistics(LOGITS[0], [1, 0, 3], 3)
    for got, want in zip(rows[0], expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "attention",
    [ATTENTION, [[1, 1, 0, 1, 1], [0, 1, 1, 1, 1]]],
    ids=["contiguous", "with-a-hole"],
)
def test_blocks_of_positions_give_what_one_pass_gives(monkeypatch, attention):
    """On the CPU each row is reduced in blocks of positions (views when the predicted
    positions are contiguous, copies when a hole splits them); blocks of two must agree with
    one block per row, -inf entries included."""
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    ids, mask = torch.tensor(INPUT_IDS), torch.tensor(attention)
    whole = token_statistics_from_logits(logits, ids, mask)
    monkeypatch.setattr(causal_lm, "_BLOCK_ELEMENTS", 2 * logits.shape[-1])
    blocked = token_statistics_from_logits(logits, ids, mask)
    for whole_row, blocked_row in zip(whole, blocked, strict=True):
        for got, want in zip(blocked_row, whole_row, strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_sigma_is_floored_for_a_certain_prediction():
    logits = torch.tensor([[[800.0, 0.0, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    (log_prob, mu, sigma), *_ = token_statistics_from_logits(logits, torch.tensor([[0, 0]]))
    assert sigma[0] == SIGMA_EPSILON and mu[0] == 0.0 and log_prob[0] == 0.0
    stats = TokenStats.from_arrays(["x"], [log_prob], [mu], [sigma])
    assert np.isfinite(lm_signals(stats)["min_k_plus_plus"]).all()


def test_a_row_without_predicted_tokens_is_named():
    logits = torch.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="row 1"):
        token_statistics_from_logits(
            logits, torch.zeros((2, 3), dtype=torch.long), torch.tensor([[1, 1, 0], [1, 0, 0]])
        )


def test_lowest_mean_takes_the_floor_of_k_n_and_at_least_one():
    values = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    assert lowest_mean(values, 0.2) == 1.0
    assert lowest_mean(values, 0.4) == 1.5
    assert lowest_mean(values, 0.01) == 1.0
    assert lowest_mean(values, 1.0) == 3.0
    assert lowest_mean(np.arange(10.0), 0.3) == 1.0  # 0.3 * 10 is 3.0000000000000004


@pytest.mark.parametrize("k", [0, -0.1, 1.5, float("nan"), True])
def test_k_must_be_a_fraction(k):
    _, stats = _hand_built_stats()
    with pytest.raises(ValueError, match="k must be"):
        lm_signals(stats, k=k)


def test_zlib_is_loss_over_compressed_utf8_bytes():
    texts = ["abc abc abc abc abc abc", "ünïcödé — text 🙂", "x"]
    log_prob = [np.array([-1.0, -3.0]), np.array([-0.5]), np.array([-2.0, -2.0, -5.0])]
    stats = TokenStats.from_arrays(texts, log_prob, log_prob, [np.ones_like(a) for a in log_prob])
    signals = lm_signals(stats)
    for i, text in enumerate(texts):
        compressed = len(zlib.compress(text.encode("utf-8")))
        assert stats.n_bytes[i] == len(text.encode("utf-8"))
        assert stats.zlib_bytes[i] == compressed
        assert signals["zlib"][i] == pytest.approx(-log_prob[i].mean() / compressed, rel=1e-12)
    np.testing.assert_array_equal(stats.n_tokens, [2, 1, 3])


def test_reference_ratio_is_target_minus_reference_loss():
    ones = [np.ones(2), np.ones(3)]
    target = TokenStats.from_arrays(["a", "b"], [np.array([-1.0, -2.0]), -ones[1]], ones, ones)
    reference = TokenStats.from_arrays(
        ["a", "b"],
        [np.array([-4.0]), np.array([-0.5, -0.5])],
        [np.ones(1), np.ones(2)],
        [np.ones(1), np.ones(2)],
    )
    signals = lm_signals(target, reference=reference)
    np.testing.assert_allclose(signals["reference_ratio"], [1.5 - 4.0, 1.0 - 0.5])
    assert "reference_ratio" not in lm_signals(target)
    with pytest.raises(ValueError, match="reference covers 1 records"):
        lm_signals(target, reference=TokenStats.from_arrays(["a"], [-ones[0]], ones[:1], ones[:1]))


def test_every_signal_has_a_direction():
    _, stats = _hand_built_stats()
    signals = lm_signals(stats, reference=stats)
    assert set(signals) == set(LM_SIGNAL_DIRECTION)
    assert set(LM_SIGNAL_DIRECTION.values()) <= {-1, +1}
    for values in signals.values():
        assert values.dtype == np.float64 and values.shape == (2,)


def test_a_record_without_predicted_tokens_is_named():
    arrays = [np.ones(2), np.ones(0), np.ones(0)]
    with pytest.raises(ValueError, match="record 1 has no predicted tokens"):
        TokenStats.from_arrays(["ab", "c", "d"], arrays, arrays, arrays)
