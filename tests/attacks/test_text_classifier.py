"""Tests for the Hugging Face text-classifier target, on a tiny model built locally."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from attacks.targets import TextClassifier
from attacks.testing import build_tiny_text_classifier

TEXTS = [
    "short",
    "a much longer sentence with many words in it",
    "medium length text here",
    "the cat sat on the mat",
    "one two",
    "word " * 20,
    "unseen vocabulary",
    "a",
]
LABELS = ["pos", "neg", "neutral", "pos", "neg", "neutral", "pos", "neg"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return build_tiny_text_classifier(folder, TEXTS[:-2], LABELS[:-2], seed=1)


@pytest.fixture(scope="module")
def classifier(model_dir):
    return TextClassifier.load(model_dir, device="cpu")


def _direct_logits(model_dir, texts):
    """Logits from an unbatched, unsorted forward pass, one text at a time."""
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    with torch.no_grad():
        for text in texts:
            encoded = tokenizer(text, return_tensors="pt")
            rows.append(model(**encoded).logits[0].numpy())
    return np.stack(rows)


def test_logits_keep_the_original_order(model_dir, classifier):
    calls = []
    logits = classifier.logits(TEXTS, batch_size=3, progress=lambda d, t: calls.append((d, t)))
    assert logits.dtype == np.float32
    assert logits.shape == (len(TEXTS), 3)
    expected = _direct_logits(model_dir, TEXTS)
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    # The texts differ enough that a mix-up in order would be caught.
    assert np.min(np.abs(expected[:, None, :] - expected[None, :, :]).sum(-1) + np.eye(8)) > 1e-3
    assert calls == [(3, 8), (6, 8), (8, 8)]


def test_logits_truncate_to_max_length(model_dir, classifier):
    long_text = "word " * 300
    truncated = classifier.logits([long_text], max_length=16)
    expected = _direct_logits(model_dir, [" ".join(["word"] * 14)])  # 14 words + CLS + SEP
    np.testing.assert_allclose(truncated, expected, atol=1e-4)


def test_logits_of_nothing(classifier):
    assert classifier.logits([]).shape == (0, 3)


def test_label_ids_by_name_and_index(classifier):
    # Classes are the sorted distinct labels: neg, neutral, pos.
    np.testing.assert_array_equal(classifier.label_ids(["pos", "neg", 1, "neutral"]), [2, 0, 1, 1])


@pytest.mark.parametrize("bad", ["positive", 3, -1, "1", True])
def test_label_ids_names_the_unknown_label(classifier, bad):
    with pytest.raises(ValueError) as caught:
        classifier.label_ids(["pos", bad, "also-bad"])
    message = str(caught.value)
    assert repr(bad) in message
    assert "also-bad" not in message
    for known in ("neg", "neutral", "pos"):
        assert known in message


def test_decimal_labels_accepted_for_default_label_names(tmp_path):
    folder = build_tiny_text_classifier(tmp_path, ["a b"], ["x", "y"])
    classifier = TextClassifier.load(folder, device="cpu")
    config = classifier.model.config
    config.id2label = {0: "LABEL_0", 1: "LABEL_1"}
    config.label2id = {"LABEL_0": 0, "LABEL_1": 1}
    np.testing.assert_array_equal(classifier.label_ids(["1", "0", "LABEL_1", 0]), [1, 0, 1, 0])
    with pytest.raises(ValueError, match="'2'"):
        classifier.label_ids(["2"])


def test_target_info(classifier):
    info = classifier.target_info()
    assert info.model_type == "bert" and info.num_labels == 3
    assert info.n_parameters == sum(p.numel() for p in classifier.model.parameters())


def test_builder_is_deterministic_per_seed(tmp_path):
    first = build_tiny_text_classifier(tmp_path / "a", ["x y"], ["p", "q"], seed=3)
    second = build_tiny_text_classifier(tmp_path / "b", ["x y"], ["p", "q"], seed=3)
    other = build_tiny_text_classifier(tmp_path / "c", ["x y"], ["p", "q"], seed=4)
    logits = [TextClassifier.load(f, device="cpu").logits(["x y"]) for f in (first, second, other)]
    np.testing.assert_array_equal(logits[0], logits[1])
    assert not np.allclose(logits[0], logits[2])


@pytest.mark.cuda
def test_cuda_mixed_precision_logits_track_cpu(model_dir, classifier):
    on_gpu = TextClassifier.load(model_dir, device="cuda")
    logits = on_gpu.logits(TEXTS, batch_size=3)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, classifier.logits(TEXTS), rtol=0.05, atol=0.1)
    # Batches sized to the free memory (all eight texts in one) give the same logits.
    np.testing.assert_allclose(on_gpu.logits(TEXTS, batch_size=None), logits, atol=0.05)
