"""Tests for inclusion masks and for training K reference models together or one by one."""

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from attacks.reference import (
    TrainConfig,
    inclusion_masks,
    minibatch_plan,
    train_reference_mlps,
    train_reference_text_classifiers,
)
from attacks.testing import build_tiny_text_classifier


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest, and reproducibly, on one thread of a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("n", [10, 11, 101])
@pytest.mark.parametrize("k", [2, 4, 8])
def test_even_k_puts_every_record_in_exactly_half_the_models(n, k):
    masks = inclusion_masks(n, k, seed=3)
    assert masks.shape == (k, n) and masks.dtype == bool
    assert np.all(masks.sum(axis=0) == k // 2)
    assert np.all(np.abs(masks.sum(axis=1) - n / 2) <= 0.5)  # each model trains on a half
    for prefix in range(2, k + 1, 2):  # every even prefix is balanced too
        assert np.all(masks[:prefix].sum(axis=0) == prefix // 2)


def test_odd_k_gives_independent_random_halves():
    one = inclusion_masks(100, 1, seed=0)
    assert one.shape == (1, 100) and one.sum() == 50
    three = inclusion_masks(100, 3, seed=0)
    assert np.all(three.sum(axis=1) == 50)
    assert not np.all(three.sum(axis=0) == three.sum(axis=0)[0])  # not a balanced design


def test_masks_are_seeded():
    np.testing.assert_array_equal(inclusion_masks(50, 4, seed=1), inclusion_masks(50, 4, seed=1))
    assert not np.array_equal(inclusion_masks(50, 4, seed=1), inclusion_masks(50, 4, seed=2))
    with pytest.raises(ValueError):
        inclusion_masks(1, 2, seed=0)
    with pytest.raises(ValueError):
        inclusion_masks(10, 0, seed=0)


def test_minibatch_plan_walks_each_model_through_its_own_records():
    masks = inclusion_masks(101, 4, seed=0)
    plan, steps_per_epoch = minibatch_plan(masks, TrainConfig(epochs=3, batch_size=16, seed=5))
    assert steps_per_epoch == 4  # ceil(51 / 16)
    assert plan.shape == (12, 4, 16)
    for k in range(4):
        members = np.flatnonzero(masks[k])
        stream = plan[:, k, :].ravel()
        assert set(stream) <= set(members)
        # The stream is one random order of the model's records after another.
        np.testing.assert_array_equal(np.sort(stream[: members.size]), members)
    again, _ = minibatch_plan(masks, TrainConfig(epochs=3, batch_size=16, seed=5))
    np.testing.assert_array_equal(plan, again)
    with pytest.raises(ValueError, match="at least one training record"):
        minibatch_plan(np.zeros((2, 5), dtype=bool), TrainConfig())


def _blobs(seed: int = 0, n: int = 240):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 8)) + np.eye(3, 8)[y] * 2.0
    return x.astype(np.float32), y


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))


@pytest.mark.slow
def test_together_and_one_by_one_give_the_same_models():
    x, y = _blobs()
    masks = inclusion_masks(len(x), 4, seed=0)
    config = TrainConfig(epochs=6, lr=1e-2, batch_size=32, seed=7)
    together = train_reference_mlps(_mlp, x, y, masks, config, together=True, device="cpu")
    apart = train_reference_mlps(_mlp, x, y, masks, config, together=False, device="cpu")
    assert together.trained_together and not apart.trained_together
    assert together.note is None
    np.testing.assert_allclose(together.loss_history, apart.loss_history, rtol=1e-4)
    logits = together.logits(x)
    assert logits.shape == (4, len(x), 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, apart.logits(x), atol=1e-4)
    # Training worked and the models are different models.
    assert np.all(together.loss_history[-1] < 0.5 * together.loss_history[0])
    assert min(np.abs(logits[i] - logits[j]).max() for i in range(4) for j in range(i)) > 1e-2
    assert together.training_seconds > 0


class _Picky(nn.Module):
    """Data-dependent control flow, which vmap cannot batch."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out if out.sum() > -1e9 else -out


@pytest.mark.slow
def test_an_architecture_vmap_cannot_run_is_trained_one_by_one():
    x, y = _blobs()
    masks = inclusion_masks(len(x), 2, seed=0)
    config = TrainConfig(epochs=2, lr=1e-2, batch_size=32)
    models = train_reference_mlps(_Picky, x, y, masks, config, together=True, device="cpu")
    assert not models.trained_together
    assert "vmap" in models.note
    assert models.logits(x).shape == (2, len(x), 3)


WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "pi",
    "rho",
]


def _texts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts of 1 to 12 words whose label is the class of their first word (so padding varies)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        words = rng.choice(WORDS, size=rng.integers(1, 13))
        texts.append(" ".join(words))
        labels.append(WORDS.index(words[0]) % 3)
    return texts, np.array(labels)


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory) -> tuple[object, list[str], np.ndarray]:
    """A tiny BERT target with dropout off, so runs with the same batches match exactly."""
    texts, labels = _texts(96)
    folder = tmp_path_factory.mktemp("tiny-target")
    build_tiny_text_classifier(folder, texts, [str(label) for label in labels], seed=0)
    config = AutoConfig.from_pretrained(folder)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(folder)
    return folder, texts, labels


def _plain_logits(params: dict[str, torch.Tensor], k: int, target_dir, texts) -> np.ndarray:
    """Model k's weights in an ordinary HF model, queried one text at a time."""
    from transformers import AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(target_dir).eval()
    state = {name.removeprefix("model."): value[k] for name, value in params.items()}
    model.load_state_dict(state, strict=False)
    tokenizer = AutoTokenizer.from_pretrained(target_dir)
    with torch.no_grad():
        rows = [model(**tokenizer(text, return_tensors="pt")).logits[0] for text in texts]
    return torch.stack(rows).numpy()


@pytest.mark.slow
def test_text_references_train_together_like_one_by_one(tiny_target):
    target_dir, texts, labels = tiny_target
    masks = inclusion_masks(len(texts), 4, seed=0)
    config = TrainConfig(epochs=4, lr=5e-3, batch_size=16, seed=1, max_length=32)
    calls: list[tuple[int, int]] = []
    together = train_reference_text_classifiers(
        target_dir, texts, labels, masks, config, device="cpu", progress=lambda *a: calls.append(a)
    )
    apart = train_reference_text_classifiers(
        target_dir, texts, labels, masks, config, together=False, device="cpu"
    )
    assert together.trained_together and not apart.trained_together
    assert together.note is None and together.vmapped
    assert calls[-1][0] == calls[-1][1]
    # Same batches, no dropout: the same losses up to float rounding of the batched matmuls.
    np.testing.assert_allclose(together.loss_history, apart.loss_history, rtol=2e-3)
    assert np.all(together.loss_history[-1] < together.loss_history[0])

    logits = together.logits(texts, batch_size=7, max_length=32)
    assert logits.shape == (4, len(texts), 3)
    np.testing.assert_allclose(logits, apart.logits(texts, max_length=32), atol=5e-3)
    # Sorting, padding and batching give each model's own logits in the caller's order.
    for k in (0, 3):
        expected = _plain_logits(together.params, k, target_dir, texts[:12])
        np.testing.assert_allclose(logits[k, :12], expected, atol=1e-4)
    assert min(np.abs(logits[i] - logits[j]).max() for i in range(4) for j in range(i)) > 1e-2


@pytest.mark.slow
def test_text_references_start_fresh_or_from_the_base_model(tiny_target, tmp_path):
    target_dir, texts, labels = tiny_target
    masks = inclusion_masks(len(texts), 2, seed=0)
    untrained = TrainConfig(epochs=0, max_length=32, seed=100)  # the target was built with 0
    target_logits = _plain_logits(
        {
            f"model.{name}": value[None]
            for name, value in AutoModelForSequenceClassification.from_pretrained(target_dir)
            .state_dict()
            .items()
        },
        0,
        target_dir,
        texts[:8],
    )
    fresh = train_reference_text_classifiers(
        target_dir, texts, labels, masks, untrained, device="cpu"
    ).logits(texts[:8])
    # Fresh weights (seed + k): neither the target's nor each other's.
    assert np.abs(fresh[0] - target_logits).max() > 1e-2
    assert np.abs(fresh[0] - fresh[1]).max() > 1e-2

    base_dir = build_tiny_text_classifier(tmp_path / "base", texts, ["0", "1", "2"], seed=9)
    base = AutoModelForSequenceClassification.from_pretrained(base_dir)
    base_logits = _plain_logits(
        {f"model.{name}": value[None] for name, value in base.state_dict().items()},
        0,
        target_dir,
        texts[:8],
    )
    pretrained = train_reference_text_classifiers(
        target_dir,
        texts,
        labels,
        masks,
        untrained,
        init="pretrained",
        base_dir=base_dir,
        device="cpu",
    ).logits(texts[:8])
    for k in range(2):
        np.testing.assert_allclose(pretrained[k], base_logits, atol=1e-4)


def test_text_references_reject_bad_input(tiny_target):
    target_dir, texts, labels = tiny_target
    masks = inclusion_masks(len(texts), 2, seed=0)
    config = TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="base_dir"):
        train_reference_text_classifiers(
            target_dir, texts, labels, masks, config, init="pretrained"
        )
    with pytest.raises(ValueError, match="label_ids"):
        train_reference_text_classifiers(target_dir, texts, labels + 3, masks, config)
    with pytest.raises(ValueError, match="masks"):
        train_reference_text_classifiers(target_dir, texts, labels, masks[:, :-1], config)
