"""Tests for the Hugging Face causal-LM target, on a tiny GPT-2 built and trained locally."""

import random

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from transformers import AutoModelForCausalLM, AutoTokenizer

from attacks.lm_signals import LM_SIGNAL_DIRECTION, lm_signals, zlib_length
from attacks.targets import CausalLM
from attacks.testing import build_tiny_causal_lm, train_tiny_causal_lm

_RNG = random.Random(0)
_WORDS = [f"w{i}" for i in range(40)]
TEXTS = [" ".join(_RNG.choices(_WORDS, k=_RNG.randint(4, 14))) for _ in range(40)]
MEMBERS, HELD_OUT = TEXTS[:20], TEXTS[20:]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"), TEXTS, seed=1)
    return train_tiny_causal_lm(folder, MEMBERS, epochs=40)


@pytest.fixture(scope="module")
def lm(model_dir):
    return CausalLM.load(model_dir, device="cpu")


def _direct_statistics(model_dir, texts):
    """(log p, mu, sigma) per text from one unpadded forward pass each, in float64."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    out = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            log_p = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
            p = log_p.exp()
            mu = (p * log_p).sum(-1)
            sigma = ((p * log_p**2).sum(-1) - mu**2).sqrt()
            out.append(
                (log_p.gather(-1, ids[0, 1:, None])[:, 0].numpy(), mu.numpy(), sigma.numpy())
            )
    return out


@pytest.mark.slow
def test_load_supplies_a_pad_token_and_reads_safetensors_only(model_dir, lm):
    assert (model_dir / "model.safetensors").exists()
    assert not list(model_dir.glob("*.bin"))
    assert lm.tokenizer.pad_token == "<|endoftext|>" == lm.tokenizer.eos_token
    assert lm.model.config.pad_token_id == lm.tokenizer.eos_token_id
    assert not lm.model.training


@pytest.mark.slow
def test_statistics_keep_the_original_order(model_dir, lm):
    texts = TEXTS[:6] + HELD_OUT[:2]
    calls = []
    stats = lm.token_statistics(texts, batch_size=3, progress=lambda d, t: calls.append((d, t)))
    assert len(stats) == len(texts)
    assert calls == [(3, 8), (6, 8), (8, 8)]
    for got, expected in zip(
        zip(stats.log_prob, stats.mu, stats.sigma, strict=True),
        _direct_statistics(model_dir, texts),
        strict=True,
    ):
        for got_array, expected_array in zip(got, expected, strict=True):
            assert got_array.dtype == np.float64
            np.testing.assert_allclose(got_array, expected_array, atol=1e-5)
    # The records differ enough that a mix-up in order would be caught.
    losses = lm_signals(stats)["loss"]
    assert np.min(np.abs(losses[:, None] - losses[None, :]) + np.eye(len(texts))) > 1e-4


@pytest.mark.slow
def test_padding_does_not_change_a_record(lm):
    short, long = "w1 w2 w3", " ".join(_WORDS)
    alone = lm.token_statistics([short], batch_size=1)
    padded = lm.token_statistics([long, short, long], batch_size=3)
    for name in ("log_prob", "mu", "sigma"):
        np.testing.assert_allclose(getattr(padded, name)[1], getattr(alone, name)[0], atol=1e-5)
    assert padded.n_tokens.tolist() == [39, 2, 39]


@pytest.mark.slow
def test_a_record_of_one_token_is_named(lm):
    with pytest.raises(ValueError, match="record 2 has 1 token"):
        lm.token_statistics(["w1 w2", "w3 w4 w5", "w6", ""])
    with pytest.raises(ValueError, match="record 0 has 0 token"):
        lm.token_statistics(["   ", "w6"])


@pytest.mark.slow
def test_truncation_scores_the_start_and_measures_zlib_on_it(lm):
    text = " ".join(_WORDS)
    stats = lm.token_statistics([text, "w1 w2"], max_length=5)
    assert stats.n_tokens.tolist() == [4, 1]
    assert stats.zlib_bytes[0] == zlib_length("w0 w1 w2 w3 w4")
    assert stats.n_bytes[0] == len("w0 w1 w2 w3 w4")
    assert stats.zlib_bytes[1] == zlib_length("w1 w2")
    # Beyond the model's 128 positions the context length caps max_length.
    assert lm.token_statistics([" ".join(_WORDS * 4)], max_length=1000).n_tokens[0] == 127


@pytest.mark.slow
def test_members_get_lower_loss_than_held_out_texts(lm):
    signals = lm_signals(lm.token_statistics(MEMBERS + HELD_OUT, batch_size=16))
    loss = signals["loss"]
    assert loss[:20].mean() < loss[20:].mean()
    is_member = np.r_[np.ones(20), np.zeros(20)]
    for name, values in signals.items():
        assert roc_auc_score(is_member, LM_SIGNAL_DIRECTION[name] * values) > 0.6, name


@pytest.mark.slow
def test_statistics_of_nothing(lm):
    stats = lm.token_statistics([])
    assert len(stats) == 0 and lm_signals(stats)["loss"].shape == (0,)


@pytest.mark.slow
def test_target_info(lm):
    info = lm.target_info()
    assert info.task == "causal-lm" and info.model_type == "gpt2" and info.num_labels is None
    assert info.n_parameters == sum(p.numel() for p in lm.model.parameters())


def test_builder_is_deterministic_per_seed(tmp_path):
    folders = [
        build_tiny_causal_lm(tmp_path / name, ["x y z"], seed=seed)
        for name, seed in (("a", 3), ("b", 3), ("c", 4))
    ]
    log_probs = [
        CausalLM.load(folder, device="cpu").token_statistics(["x y z"]).log_prob[0]
        for folder in folders
    ]
    np.testing.assert_array_equal(log_probs[0], log_probs[1])
    assert not np.allclose(log_probs[0], log_probs[2])


@pytest.mark.slow
@pytest.mark.cuda
def test_cuda_mixed_precision_statistics_track_cpu(model_dir, lm):
    on_gpu = CausalLM.load(model_dir, device="cuda")
    gpu = on_gpu.token_statistics(TEXTS, batch_size=7)
    cpu = lm.token_statistics(TEXTS)
    gpu_loss, cpu_loss = lm_signals(gpu)["loss"], lm_signals(cpu)["loss"]
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=0.05, atol=0.05)
    # Per token, within bf16's rounding of the logits (the statistics are float32 from them).
    for name in ("log_prob", "mu", "sigma"):
        np.testing.assert_allclose(
            np.concatenate(getattr(gpu, name)), np.concatenate(getattr(cpu, name)), atol=0.25
        )
    auto = on_gpu.token_statistics(TEXTS, batch_size=None)  # sized to the free memory
    np.testing.assert_allclose(lm_signals(auto)["loss"], gpu_loss, atol=0.05)
