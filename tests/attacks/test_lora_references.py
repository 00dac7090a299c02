"""LoRA reference adapters for causal LMs: trained together like one by one, scored like the
target, and informative enough for LiRA on a LoRA target."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from attacks.lm_signals import lm_signals
from attacks.metrics import auc
from attacks.mia import AttackInputs, get_attack
from attacks.reference import TrainConfig, inclusion_masks
from attacks.reference import lora as lora_module
from attacks.reference.lora import lm_reference_signals, train_reference_lm_adapters
from attacks.targets.causal_lm import CausalLM
from attacks.testing import build_tiny_causal_lm


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest, and reproducibly, on one thread of a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(60)]
    return [" ".join(rng.choice(words, rng.integers(3, 14))) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> tuple[Path, list[str]]:
    texts = _texts(48)
    folder = build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "base", texts, hidden_size=32)
    return folder, texts


def test_together_and_one_by_one_give_the_same_adapters(tiny_base):
    base, texts = tiny_base
    masks = inclusion_masks(len(texts), 3, seed=0)
    config = TrainConfig(epochs=2, lr=1e-2, batch_size=8, seed=4)
    together = train_reference_lm_adapters(base, texts, masks, config, rank=4, device="cpu")
    apart = train_reference_lm_adapters(
        base, texts, masks, config, rank=4, together=False, device="cpu"
    )
    assert together.trained_together and not apart.trained_together
    assert together.note is None and together.vmapped
    assert together.n_models == 3 and together.loss_history.shape == (2, 3)
    np.testing.assert_allclose(together.loss_history, apart.loss_history, rtol=1e-5)
    for name, value in together.params.items():
        assert "lora_" in name  # only the adapters are stacked; the base is held once
        torch.testing.assert_close(value, apart.params[name], rtol=1e-4, atol=1e-5)
    losses = together.mean_token_loss(texts, batch_size=7)
    assert losses.shape == (3, len(texts))
    assert np.abs(losses - apart.mean_token_loss(texts, batch_size=5)).max() < 1e-4
    # The adapters differ (own init, own data), and training moved them off the base.
    assert not np.allclose(losses[0], losses[1], atol=1e-4)
    assert np.all(together.loss_history[-1] < together.loss_history[0])


def test_untrained_adapters_score_like_the_base_target(tiny_base):
    """B = 0 at initialisation: the references are the base, and must be scored exactly as
    the target's `loss` signal is (same cut, padding and predicted positions)."""
    base, texts = tiny_base
    long_texts = [*texts[:10], " ".join(["w1"] * 200)]  # cut at the context length (128)
    masks = inclusion_masks(len(long_texts), 2, seed=0)
    references = train_reference_lm_adapters(
        base, long_texts, masks, TrainConfig(epochs=0, max_length=64), device="cpu"
    )
    target = CausalLM.load(base, "cpu")
    for max_length in (16, 256):
        expected = lm_signals(target.token_statistics(long_texts, max_length=max_length))["loss"]
        got = references.mean_token_loss(long_texts, batch_size=4, max_length=max_length)
        np.testing.assert_allclose(got, np.tile(expected, (2, 1)), atol=1e-5)


def test_adapters_fit_their_own_texts_and_lira_finds_a_lora_target(tiny_base):
    """A LoRA target fitted to the members over the same base: online LiRA with 4 reference
    adapters on members + non-members ranks members first."""
    base, _ = tiny_base
    texts = _texts(40, seed=1)
    is_member = np.arange(len(texts)) < 20
    config = TrainConfig(epochs=12, lr=2e-2, batch_size=8, seed=0)
    target = train_reference_lm_adapters(base, texts, is_member[None], config, device="cpu")
    target_loss = target.mean_token_loss(texts)[0]
    masks = inclusion_masks(len(texts), 4, seed=2)
    references = train_reference_lm_adapters(
        CausalLM.load(base, "cpu"), texts, masks, config, device="cpu"
    )
    losses = references.mean_token_loss(texts)
    assert losses[masks].mean() < losses[~masks].mean() - 0.1  # IN texts were fitted
    inputs = AttackInputs(
        target=lm_reference_signals(target_loss),
        references=lm_reference_signals(losses),
        reference_in=masks,
    )
    lira = get_attack("lira-global").score(inputs)
    lira_auc = auc(lira[is_member], lira[~is_member])
    loss_auc = auc(-target_loss[is_member], -target_loss[~is_member])
    assert lira_auc > 0.8 and lira_auc >= loss_auc - 0.05, (lira_auc, loss_auc)


def test_vmap_failure_falls_back_to_one_by_one(tiny_base, monkeypatch):
    base, texts = tiny_base
    monkeypatch.setattr(
        lora_module, "vmappable_mask_mode", lambda *args: (None, "vmap cannot run this")
    )
    masks = inclusion_masks(len(texts), 2, seed=0)
    references = train_reference_lm_adapters(
        base, texts, masks, TrainConfig(epochs=1, batch_size=8), device="cpu"
    )
    assert not references.trained_together and not references.vmapped
    assert references.note == "not vmapped: vmap cannot run this"
    assert references.mean_token_loss(texts[:5]).shape == (2, 5)


def test_reference_signals_are_the_mean_log_likelihood_and_its_exponent():
    signals = lm_reference_signals(np.array([[0.0, 1.0], [2.0, 0.5]]))
    np.testing.assert_allclose(signals["confidence"], [[0.0, -1.0], [-2.0, -0.5]])
    np.testing.assert_allclose(signals["probability"], np.exp([[0.0, -1.0], [-2.0, -0.5]]))


def test_bad_input_is_rejected(tiny_base):
    base, texts = tiny_base
    masks = inclusion_masks(len(texts), 2, seed=0)
    with pytest.raises(ValueError, match="masks"):
        train_reference_lm_adapters(base, texts[:-1], masks, TrainConfig(), device="cpu")
    with pytest.raises(ValueError, match="rank"):
        train_reference_lm_adapters(base, texts, masks, TrainConfig(), rank=0, device="cpu")
    with pytest.raises(ValueError, match="text 1 has 1 token"):
        train_reference_lm_adapters(
            base, ["w1 w2", "w3"], np.array([[True, True]]), TrainConfig(), device="cpu"
        )
