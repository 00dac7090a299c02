"""The GPU path's decisions, checked on the CPU: precision, copies, batch sizes, OOM halving.

The CUDA decisions are tested by faking what torch reports about the device (bf16 support,
free memory); the `cuda` tests at the end run only where a GPU is.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest
import torch
from transformers import BertConfig, GPT2Config

from attacks.batching import in_batches
from attacks.device import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    ForwardShape,
    autocast_dtype,
    autocast_for,
    batch_size_for,
    describe_device,
    estimate_batch_size,
    forward_shape,
    precision_name,
    record_bytes,
    to_device,
)
from attacks.targets import CausalLM, TextClassifier
from attacks.testing import build_tiny_causal_lm, build_tiny_text_classifier

GPT2_SMALL = ForwardShape(hidden_size=768, n_heads=12, n_layers=12, vocab_size=50257)
BERT_BASE = ForwardShape(hidden_size=768, n_heads=12, n_layers=12)
TEXTS = [" ".join(f"w{i % 7}" for i in range(n)) for n in (3, 9, 4, 12, 2, 7, 5, 11, 6, 8)]


def test_cpu_runs_in_float32_with_plain_copies() -> None:
    assert autocast_dtype("cpu") is None and autocast_dtype("cpu", training=True) is None
    assert isinstance(autocast_for("cpu"), contextlib.nullcontext)
    assert precision_name("cpu") == "float32" and describe_device("cpu") == "cpu"
    with autocast_for("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    batch = torch.arange(6).view(2, 3)
    assert to_device(batch, "cpu") is batch  # no pinned copy on the CPU
    assert not batch.is_pinned()


@pytest.mark.parametrize(
    ("bf16", "training", "dtype", "name"),
    [
        (True, False, torch.bfloat16, "bf16 autocast"),
        (True, True, torch.bfloat16, "bf16 autocast"),
        (False, False, torch.float16, "fp16 autocast"),
        (False, True, None, "float32"),  # no fp16 training without a GradScaler
    ],
)
def test_cuda_precision_follows_bf16_support(monkeypatch, bf16, training, dtype, name) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert autocast_dtype("cuda:0", training=training) == dtype
    assert precision_name("cuda", training=training) == name


def test_config_shapes_read_bert_and_gpt2_names() -> None:
    assert forward_shape(GPT2Config(), lm_logits=True) == GPT2_SMALL
    assert forward_shape(BertConfig(), lm_logits=False) == BERT_BASE
    with pytest.raises(ValueError, match="hidden_size"):
        forward_shape(object(), lm_logits=False)


def test_lm_logits_dominate_a_gpt2_record() -> None:
    per_record = record_bytes(GPT2_SMALL, 128, value_bytes=2)
    logits = 50257 * 128 * 4  # float32 [length, vocab]: 26 MB
    assert logits < per_record < 1.5 * logits
    assert record_bytes(BERT_BASE, 128, value_bytes=2) < per_record / 3
    assert record_bytes(GPT2_SMALL, 128, value_bytes=2, n_models=4) == 4 * per_record
    assert record_bytes(GPT2_SMALL, 64, value_bytes=2) < per_record / 1.9


def test_batch_size_estimate_from_free_memory() -> None:
    per_record = 35_168_768  # GPT-2 small at 128 tokens, bf16 activations
    assert estimate_batch_size(8 * 10**9, per_record) == 113  # 4e9 // 35.2e6
    assert estimate_batch_size(8 * 10**9, per_record, share=0.25) == 56
    assert estimate_batch_size(78 * 2**30, per_record) == MAX_BATCH_SIZE  # capped
    assert estimate_batch_size(10**6, per_record) == 1  # at least one record
    with pytest.raises(ValueError):
        estimate_batch_size(10**9, 0)


def test_batch_size_is_the_specs_else_the_default_on_cpu(monkeypatch) -> None:
    def no_gpu(*_: Any) -> Any:
        raise AssertionError("the GPU's memory was read")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_gpu)
    assert batch_size_for(64, "cpu", GPT2Config(), 128, lm_logits=True) == 64
    assert batch_size_for(64, "cuda", GPT2Config(), 128, lm_logits=True) == 64
    assert batch_size_for(None, "cpu", GPT2Config(), 128, lm_logits=True) == DEFAULT_BATCH_SIZE
    with pytest.raises(ValueError):
        batch_size_for(0, "cpu", GPT2Config(), 128)


def test_batch_size_on_cuda_fits_the_free_memory(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (8 * 10**9, 80 * 10**9))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    per_record = record_bytes(GPT2_SMALL, 128, value_bytes=2)
    chosen = batch_size_for(None, "cuda:0", GPT2Config(), 128, lm_logits=True)
    assert chosen == estimate_batch_size(8 * 10**9, per_record) == 113
    references = batch_size_for(None, "cuda", BertConfig(), 128, n_models=8)
    assert references == estimate_batch_size(
        8 * 10**9, record_bytes(BERT_BASE, 128, value_bytes=2, n_models=8)
    )


class _OutOfMemoryAbove:
    """A batch runner that runs out of GPU memory on batches larger than `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit, self.sizes, self.done = limit, [], []

    def __call__(self, batch: np.ndarray) -> None:
        self.sizes.append(len(batch))
        if len(batch) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        self.done.append(batch.tolist())


def test_out_of_memory_halves_the_batch_and_retries_it() -> None:
    runner = _OutOfMemoryAbove(5)
    assert in_batches(np.arange(40), 32, runner) == 4
    assert runner.sizes[:4] == [32, 16, 8, 4]  # the first batch, halved until it fits
    assert [i for batch in runner.done for i in batch] == list(range(40))  # once each, in order
    assert max(map(len, runner.done)) == 4


def test_out_of_memory_at_one_record_is_raised() -> None:
    with pytest.raises(torch.cuda.OutOfMemoryError):
        in_batches(np.arange(3), 8, _OutOfMemoryAbove(0))


def test_batches_that_fit_run_once_and_other_errors_pass() -> None:
    runner = _OutOfMemoryAbove(100)
    assert in_batches(np.arange(10), 4, runner) == 4
    assert runner.sizes == [4, 4, 2]

    def broken(batch: np.ndarray) -> None:
        raise RuntimeError("not a memory error")

    with pytest.raises(RuntimeError, match="not a memory error"):
        in_batches(np.arange(3), 2, broken)


class _FlakyModel:
    """The model, out of GPU memory on any batch of more than `limit` records."""

    def __init__(self, model: Any, limit: int) -> None:
        self.model, self.limit, self.batches = model, limit, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def __call__(self, **inputs: Any) -> Any:
        self.batches.append(len(inputs["input_ids"]))
        if len(inputs["input_ids"]) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return self.model(**inputs)


def test_scoring_survives_out_of_memory_with_the_same_numbers(tmp_path) -> None:
    folder = build_tiny_text_classifier(tmp_path / "clf", TEXTS, ["a", "b"] * 5, seed=2)
    classifier = TextClassifier.load(folder, device="cpu")
    expected = classifier.logits(TEXTS, batch_size=8)
    flaky = _FlakyModel(classifier.model, limit=3)
    classifier.model = flaky
    calls: list[tuple[int, int]] = []
    got = classifier.logits(TEXTS, batch_size=8, progress=lambda *a: calls.append(a))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert flaky.batches[:3] == [8, 4, 2] and max(flaky.batches[2:]) == 2
    assert calls[-1] == (10, 10) and [done for done, _ in calls] == sorted(d for d, _ in calls)

    lm_folder = build_tiny_causal_lm(tmp_path / "lm", TEXTS, seed=2)
    lm = CausalLM.load(lm_folder, device="cpu")
    before = lm.token_statistics(TEXTS, batch_size=8)
    lm.model = _FlakyModel(lm.model, limit=3)
    after = lm.token_statistics(TEXTS, batch_size=8)
    for name in ("log_prob", "mu", "sigma"):
        for x, y in zip(getattr(before, name), getattr(after, name), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5)


@pytest.mark.cuda
def test_cuda_copies_and_batch_sizes() -> None:
    host = torch.arange(12).view(3, 4)
    on_gpu = to_device(host, "cuda")
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), host)
    name = precision_name("cuda")
    assert name in ("bf16 autocast", "fp16 autocast")
    assert torch.cuda.get_device_name(0) in describe_device("cuda:0") and name in describe_device(
        "cuda:0"
    )
    assert 1 <= batch_size_for(None, "cuda", GPT2Config(), 128, lm_logits=True) <= MAX_BATCH_SIZE
    with autocast_for("cuda"):
        product = torch.ones(4, 4, device="cuda") @ torch.ones(4, 4, device="cuda")
    assert product.dtype == autocast_dtype("cuda")
