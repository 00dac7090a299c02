"""A shard of the reference models: reference k trains the same whichever shard runs it."""

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from transformers import AutoConfig

from app.audits.shards import layout
from attacks.reference import TrainConfig, inclusion_masks, train_reference_text_classifiers
from attacks.testing import build_tiny_text_classifier

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_layout_covers_every_reference_once_in_contiguous_blocks():
    assert layout(8, 2) == [(0, 4), (4, 8)]
    assert layout(5, 3) == [(0, 2), (2, 4), (4, 5)]
    assert layout(2, 8) == [(0, 1), (1, 2)]  # never more shards than references
    assert layout(4, 1) == [(0, 4)]


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory):
    """Dropout off: the one draw that a shard's references share (see `only`)."""
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for _ in range(64):
        words = rng.choice(WORDS, size=rng.integers(1, 10))
        texts.append(" ".join(words))
        labels.append(WORDS.index(words[0]) % 3)
    folder = tmp_path_factory.mktemp("tiny-target")
    build_tiny_text_classifier(folder, texts, [str(label) for label in labels], seed=0)
    config = AutoConfig.from_pretrained(folder)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(folder)
    return folder, texts, np.array(labels)


@pytest.mark.slow
def test_a_shard_trains_its_references_as_the_whole_set_does(tiny_target):
    target_dir, texts, labels = tiny_target
    masks = inclusion_masks(len(texts), 4, seed=0)
    config = TrainConfig(epochs=3, lr=5e-3, batch_size=8, seed=1, max_length=32)
    whole = train_reference_text_classifiers(target_dir, texts, labels, masks, config, device="cpu")
    shard = train_reference_text_classifiers(
        target_dir, texts, labels, masks, config, device="cpu", only=[2, 3]
    )
    assert shard.n_models == 2 and shard.trained_together
    # Same initialisation, batches and steps as references 2 and 3 of the whole set: the same
    # losses and logits up to float rounding (a step's padding width is the shard's own).
    np.testing.assert_allclose(shard.loss_history, whole.loss_history[:, 2:], rtol=1e-4)
    got = shard.logits(texts, max_length=32)
    np.testing.assert_allclose(got, whole.logits(texts, max_length=32)[2:], atol=1e-4)
    # ...and not those of the first two (a shard is not the whole set's prefix).
    assert np.abs(got - whole.logits(texts, max_length=32)[:2]).max() > 1e-2


def test_only_names_references_of_the_set(tiny_target):
    target_dir, texts, labels = tiny_target
    masks = inclusion_masks(len(texts), 2, seed=0)
    with pytest.raises(ValueError, match="distinct references"):
        train_reference_text_classifiers(
            target_dir, texts, labels, masks, TrainConfig(epochs=0), device="cpu", only=[1, 2]
        )
