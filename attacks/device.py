"""What differs on a GPU, decided in one place: precision, host-to-device copies, batch sizes.

Scoring, reference training and canaries all ask here, so they agree with each other; on the
CPU every answer is "as before": float32, plain copies, the batch size the spec gives.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

Device = str | torch.device

DEFAULT_BATCH_SIZE = 32
"""Records per forward pass when the spec names none and the device is not a GPU."""

MAX_BATCH_SIZE = 1024
"""The largest batch size chosen from free memory: the API's bound on `options.batch_size`."""

MEMORY_SHARE = 0.5
"""Share of the GPU's free memory a sized batch may fill: the estimate below counts the large
tensors only, and the caching allocator fragments what is left."""

HIDDEN_COPIES = 16
"""[length, hidden] activations alive at once inside one layer (residual, normed input, query,
key, value, attention output, the MLP's 4x intermediate and its activation, with room)."""


def is_cuda(device: Device) -> bool:
    return torch.device(device).type == "cuda"


def autocast_dtype(device: Device, *, training: bool = False) -> torch.dtype | None:
    """bf16 on a CUDA device that has it; else fp16 for inference only (fp16 training would
    need a GradScaler, so it trains in float32); None (float32) on the CPU."""
    if not is_cuda(device):
        return None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None if training else torch.float16


def autocast_for(
    device: Device, *, training: bool = False
) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for the model's forward pass on CUDA; a null context on the CPU.

    Only the forward runs under it: statistics derived from logits are computed from float32
    logits, so numbers stay comparable across devices."""
    dtype = autocast_dtype(device, training=training)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def precision_name(device: Device, *, training: bool = False) -> str:
    """ "bf16 autocast", "fp16 autocast" or "float32", for reports and benchmark payloads."""
    dtype = autocast_dtype(device, training=training)
    if dtype is None:
        return "float32"
    return f"{'bf16' if dtype == torch.bfloat16 else 'fp16'} autocast"


def describe_device(device: str) -> str:
    """`cuda:0 (NVIDIA H100 ..., bf16 autocast)` or `cpu`: named in reports so that numbers
    can be compared fairly."""
    if is_cuda(device):
        return f"{device} ({torch.cuda.get_device_name(device)}, {precision_name(device)})"
    return device


def to_device(tensor: torch.Tensor, device: Device) -> torch.Tensor:
    """A host batch on `device`: pinned and copied without blocking on CUDA, so the copy
    overlaps the previous batch's work; unchanged on the CPU."""
    if not is_cuda(device):
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


@dataclass(frozen=True)
class ForwardShape:
    """What one record's memory in a forward pass depends on, read off the model's config."""

    hidden_size: int
    n_heads: int
    n_layers: int
    vocab_size: int = 0
    """For a causal LM, whose [length, vocab] logits dominate; 0 for a classifier."""


def forward_shape(config: Any, *, lm_logits: bool) -> ForwardShape:
    """The shape of a transformers config (BERT-style or GPT-2-style names)."""

    def read(*names: str) -> int:
        for name in names:
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        raise ValueError(f"the model's config gives none of {', '.join(names)}")

    return ForwardShape(
        hidden_size=read("hidden_size", "n_embd", "d_model", "dim"),
        n_heads=read("num_attention_heads", "n_head", "num_heads", "n_heads"),
        n_layers=read("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
        vocab_size=read("vocab_size") if lm_logits else 0,
    )


def record_bytes(shape: ForwardShape, length: int, *, value_bytes: int, n_models: int = 1) -> int:
    """Peak device memory one record of `length` tokens adds to an inference forward pass.

    Layers run one after another and keep nothing for a backward pass, so one layer's
    activations count, plus keys and values per layer (a decoder may cache them), the attention
    matrices (eager attention materialises them) and an LM's logits in float32 (the statistics
    read them as float32; GPT-2 at 128 tokens: 50257 x 128 x 4 B = 26 MB per record).
    `n_models` stacked models (references queried together) each hold their own.
    """
    hidden = HIDDEN_COPIES * length * shape.hidden_size * value_bytes
    cache = 2 * shape.n_layers * length * shape.hidden_size * value_bytes
    attention = 2 * shape.n_heads * length * length * max(value_bytes, 4)
    logits = length * shape.vocab_size * 4
    return n_models * (hidden + cache + attention + logits)


def estimate_batch_size(
    free_bytes: int,
    per_record_bytes: int,
    *,
    share: float = MEMORY_SHARE,
    cap: int = MAX_BATCH_SIZE,
) -> int:
    """Records per batch that fit in `share` of the free memory, between 1 and `cap`."""
    if per_record_bytes <= 0:
        raise ValueError("per_record_bytes must be positive")
    return max(1, min(cap, int(free_bytes * share) // per_record_bytes))


def batch_size_for(
    requested: int | None,
    device: Device,
    config: Any,
    length: int,
    *,
    lm_logits: bool = False,
    n_models: int = 1,
) -> int:
    """The spec's batch size when it names one; else DEFAULT_BATCH_SIZE off CUDA, and on CUDA
    what fits the free memory (measured now, with the model already loaded) for records of
    `length` tokens. A wrong guess costs a halving (`attacks.batching.in_batches`), not the
    audit."""
    if requested is not None:
        if requested < 1:
            raise ValueError("batch_size must be positive")
        return requested
    if not is_cuda(device):
        return DEFAULT_BATCH_SIZE
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    dtype = autocast_dtype(device)
    value_bytes = 4 if dtype is None else torch.finfo(dtype).bits // 8
    shape = forward_shape(config, lm_logits=lm_logits)
    return estimate_batch_size(
        free, record_bytes(shape, length, value_bytes=value_bytes, n_models=n_models)
    )
