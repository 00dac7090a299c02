"""Reference models for a causal LM: K LoRA adapters over the target's one frozen base model.

The target is a LoRA adapter over a base model, so its reference models are too: adapter k is
fitted to the texts where masks[k] holds, with the same minibatch plan, optimizer and seeds as
the classifiers' references (`attacks.reference.training`). Together, the K adapters' tensors
are stacked and one vmapped `functional_call` steps them all, the base's weights being the
template's own (unbatched, frozen, held once); one after another gives the same adapters.

LiRA and RMIA read per-text values: `mean_token_loss` [K, n], the mean next-token negative
log-likelihood over the text's predicted tokens, exactly as the target's `loss` signal is
measured (`CausalLM.token_statistics`); `lm_reference_signals` turns it into the signals the
attacks read.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attacks.batching import in_batches, longest_first_order, pad_batch
from attacks.device import batch_size_for, to_device
from attacks.reference.text import (
    MaskModeModule,
    mask_in_mode,
    probe_rows,
    vmappable_mask_mode,
)
from attacks.reference.training import (
    Batch,
    Progress,
    StackedModels,
    TrainConfig,
    default_device,
    fit_stacked,
    minibatch_plan,
)
from attacks.targets.causal_lm import CausalLM
from attacks.targets.loading import cut_for_tokenizer

ADAPTER = "default"
"""The one adapter name in the template; its K values live in the stacked parameters."""

IGNORED = -100
"""Label of positions that predict nothing (padding): cross-entropy skips them."""


class NextTokenLogits(MaskModeModule):
    """A causal LM with LoRA layers as (input_ids, attention_mask) -> logits [B, L-1, vocab]
    of the predicted positions, the mask in `mask_mode` form, for `functional_call`.

    It never leaves eval mode: the frozen base runs without dropout (and LoRA dropout is 0),
    so the fit is deterministic and the K adapters train alike together or one by one.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.mask_mode = "2d"

    def train(self, mode: bool = True) -> NextTokenLogits:
        return super().train(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        mask = mask_in_mode(attention_mask, input_ids.shape[-1], self.mask_mode, dtype)
        logits = self.model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
        return logits[:, :-1]


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the predicted (non-padding) tokens of a batch, as HF does."""
    return F.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=IGNORED)


def next_token_labels(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Labels [..., L-1]: token t where it and the token before it are real, else IGNORED."""
    real = mask.bool()
    return ids[..., 1:].masked_fill(~(real[..., 1:] & real[..., :-1]), IGNORED)


def lm_reference_signals(mean_loss: np.ndarray) -> dict[str, np.ndarray]:
    """The signals LiRA and RMIA read, from mean token losses ([n] or [K, n]).

    - confidence (LiRA) = -loss, the mean token log-likelihood: a per-token average is close
      to Gaussian across models, and unlike the whole text's log-probability it does not
      scale with the text's length.
    - probability (RMIA) = exp(-loss), the geometric mean of the token probabilities
      (1 / perplexity), Pr(x | model) per token so that ratios stay in range for any length.
    """
    loss = np.asarray(mean_loss, dtype=np.float64)
    return {"confidence": -loss, "probability": np.exp(-loss)}


@dataclass
class ReferenceLMAdapters(StackedModels):
    """K LoRA adapters over one shared base; `mean_token_loss(texts)` is [K, n]."""

    tokenizer: Any = None
    device: str = "cpu"
    context_length: int | None = None

    def mean_token_loss(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = 16,
        max_length: int = 256,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Mean next-token loss [K, n] (float64) of every adapter on every text, each text cut
        and padded as the target's scoring does; one vmapped forward per batch of texts, the
        results copied to the host once. `batch_size=None` sizes batches to the GPU's free
        memory for K models' [L, vocabulary] logits."""
        if (batch_size is not None and batch_size < 1) or max_length < 2:
            raise ValueError("batch_size must be positive and max_length at least 2")
        encoded = _encode(self.tokenizer, list(texts), max_length, self.context_length)
        if not encoded:
            return np.empty((self.n_models, 0), dtype=np.float64)
        pad_id = self.tokenizer.pad_token_id
        assert isinstance(self.template, NextTokenLogits)
        size = batch_size_for(
            batch_size,
            self.device,
            cast(Any, self.template.model).get_base_model().config,
            max(map(len, encoded)),
            lm_logits=True,
            n_models=self.n_models,
        )
        parts: list[torch.Tensor] = []
        done: list[np.ndarray] = []
        n_scored = 0

        def score(batch: np.ndarray) -> None:
            nonlocal n_scored
            ids, mask = pad_batch([encoded[i] for i in batch], pad_id)
            ids, mask = to_device(ids, self.device), to_device(mask, self.device)
            logits = self.forward_all(ids, mask).float()  # [K, B, L-1, vocab]
            labels = next_token_labels(ids, mask)
            counted = labels != IGNORED
            token_loss = F.cross_entropy(
                logits.flatten(0, -2),
                labels.expand(logits.shape[0], *labels.shape).flatten(),
                ignore_index=IGNORED,
                reduction="none",
            ).view(logits.shape[:-1])
            parts.append((token_loss * counted).sum(-1) / counted.sum(-1))
            done.append(batch)
            n_scored += len(batch)
            if progress is not None:  # from the Python count: no device sync per batch
                progress(n_scored, len(encoded))

        in_batches(longest_first_order(encoded), size, score)
        out = np.empty((self.n_models, len(encoded)), dtype=np.float64)
        out[:, np.concatenate(done)] = torch.cat(parts, dim=1).double().cpu().numpy()
        return out


def train_reference_lm_adapters(
    base: Path | CausalLM,
    texts: Sequence[str],
    masks: np.ndarray,
    config: TrainConfig,
    *,
    rank: int = 8,
    alpha: int = 16,
    target_modules: Sequence[str] | None = None,
    together: bool = True,
    device: str | None = None,
    progress: Progress | None = None,
) -> ReferenceLMAdapters:
    """Train K = len(masks) LoRA adapters over `base` (a model folder, or a loaded CausalLM
    whose model then receives the LoRA layers), adapter k on the texts where masks[k] holds.

    LoRA: rank `rank`, scale alpha / rank, dropout 0, on `target_modules` or peft's default
    modules for the architecture (GPT-2: c_attn); adapter k initialised as peft does (A
    random, B zero: the base's own predictions) under seed + k. Each step minimises the mean
    next-token cross-entropy over the batch's non-padding tokens with Adam. Texts are cut to
    `config.max_length` tokens (and the context length); every text needs two tokens.
    `training_seconds` covers building, tokenizing and training.
    """
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    started = time.perf_counter()
    texts = list(texts)
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != len(texts):
        raise ValueError("need masks [K, n] over the n texts")
    if rank < 1 or alpha <= 0:
        raise ValueError("rank must be at least 1 and alpha positive")
    if isinstance(base, CausalLM):
        device = base.device if device is None else device
    else:
        base = CausalLM.load(Path(base), device or default_device())
        device = base.device
    tokenizer, context_length = base.tokenizer, base.context_length
    if tokenizer.pad_token_id is None:
        raise ValueError("the base's tokenizer has neither a pad nor an end-of-text token")
    encoded = _encode(tokenizer, texts, config.max_length, context_length)
    plan, steps_per_epoch = minibatch_plan(masks, config)

    model = base.model.to(device)
    model.requires_grad_(False)
    # Attention as plain matmuls: vmap batches them, whereas fused attention kernels may lack
    # a batching rule and run once per adapter (PyTorch warns so for the CPU's flash kernel).
    model.set_attn_implementation("eager")
    lora = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=list(target_modules) if target_modules else None,
    )
    with warnings.catch_warnings():  # peft's own notes: it sets fan_in_fan_out for Conv1D
        warnings.filterwarnings("ignore", message="fan_in_fan_out is set to False")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing")
        adapted = get_peft_model(model, lora, adapter_name=ADAPTER)
    template = NextTokenLogits(adapted).eval()
    names = [name for name, p in template.named_parameters() if p.requires_grad]
    if not names:
        raise ValueError("LoRA found no module to adapt in this architecture")
    layers = [m for m in template.modules() if isinstance(m, LoraLayer)]
    inits = []
    for k in range(len(masks)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + k)
            for layer in layers:
                layer.reset_lora_parameters(ADAPTER, True)
            own = dict(template.named_parameters())
            inits.append({name: own[name].detach().clone() for name in names})
    params = {name: torch.stack([init[name] for init in inits]).requires_grad_() for name in names}
    buffers: dict[str, torch.Tensor] = {}  # the base's buffers stay the template's own, shared

    pad_id = tokenizer.pad_token_id

    def make_batch(indices: np.ndarray) -> Batch:
        """Each adapter's texts padded to the longest text of the step, as [K', B, L]."""
        ids, mask = pad_batch([encoded[i] for i in indices.ravel()], pad_id)
        shape = (*indices.shape, ids.shape[-1])
        ids, mask = to_device(ids.view(shape), device), to_device(mask.view(shape), device)
        return (ids, mask), next_token_labels(ids, mask)

    mode, why = _mask_mode(template, params, make_batch, encoded)
    note = None
    if mode is None:
        note, together = f"not vmapped: {why}", False
    else:
        template.mask_mode = mode
    stacked = fit_stacked(
        template,
        params,
        buffers,
        make_batch,
        plan,
        steps_per_epoch,
        config,
        together=together,
        device=device,
        progress=progress,
        loss=next_token_loss,
    )
    return ReferenceLMAdapters(
        template=stacked.template,
        params=stacked.params,
        buffers=stacked.buffers,
        training_seconds=time.perf_counter() - started,
        trained_together=stacked.trained_together,
        loss_history=stacked.loss_history,
        note=stacked.note or note,
        vmapped=mode is not None,
        tokenizer=tokenizer,
        device=device,
        context_length=context_length,
    )


def _mask_mode(
    template: NextTokenLogits,
    params: dict[str, torch.Tensor],
    make_batch: Any,
    encoded: list[list[int]],
) -> tuple[str | None, str]:
    """The mask form the vmapped forward needs, checked against each adapter's plain forward
    with perturbed LoRA B (B = 0 at initialisation would hide a wrong pairing)."""
    k = len(next(iter(params.values())))
    (ids, mask), _ = make_batch(np.tile(probe_rows(encoded), (k, 1)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = {n: (v + 0.1 * torch.randn_like(v)).detach() for n, v in params.items()}
    with torch.no_grad():
        from torch.func import functional_call

        expected = torch.stack(
            [
                functional_call(template, {n: v[j] for n, v in probe.items()}, (ids[j], mask[j]))
                for j in range(k)
            ]
        )
    return vmappable_mask_mode(template, probe, {}, (ids, mask), expected)


def _encode(
    tokenizer: Any, texts: list[str], max_length: int, context_length: int | None
) -> list[list[int]]:
    """Token ids of each text, cut as `CausalLM.token_statistics` cuts them."""
    if any(not isinstance(text, str) for text in texts):
        raise TypeError("texts must be strings")
    if context_length is not None:
        max_length = min(max_length, context_length)
    if not texts:
        return []
    ids: list[list[int]] = tokenizer(
        cut_for_tokenizer(texts, max_length), truncation=True, max_length=max_length
    )["input_ids"]
    for index, row in enumerate(ids):
        if len(row) < 2:
            raise ValueError(
                f"text {index} has {len(row)} token(s); at least two are needed so that one "
                "is predicted from the text before it"
            )
    return ids
