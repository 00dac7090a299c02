"""Reference models for a Hugging Face text classifier: its architecture, retrained on halves."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from attacks.batching import in_batches, longest_first_order, pad_batch
from attacks.device import DEFAULT_BATCH_SIZE, batch_size_for, to_device
from attacks.reference.training import (
    Batch,
    Progress,
    StackedModels,
    TrainConfig,
    build_models,
    default_device,
    fit_models,
    minibatch_plan,
)
from attacks.targets.loading import cut_for_tokenizer

# How the padding mask reaches the model. A 2-D mask is what the model expects, but some
# transformers versions inspect its values (e.g. "is anything padded?") while building the
# attention bias, which vmap cannot batch; a prepared additive 4-D mask skips that step.
MASK_MODES = ("2d", "padding-4d", "causal-4d")


class MaskModeModule(nn.Module):
    """A module that passes its padding mask on in `mask_mode` form (one of `MASK_MODES`)."""

    mask_mode: str = "2d"


class SequenceLogits(MaskModeModule):
    """A sequence classifier as (input_ids, attention_mask) -> logits, the padding mask in
    `mask_mode` form, so K copies can be stacked and called through `functional_call`."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model: PreTrainedModel = model
        self.mask_mode = "2d"

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(
            input_ids=input_ids, attention_mask=self._mask(attention_mask, input_ids.shape[-1])
        ).logits

    def _mask(self, attention_mask: torch.Tensor, length: int) -> torch.Tensor:
        return mask_in_mode(attention_mask, length, self.mask_mode, self.model.dtype)


def mask_in_mode(
    attention_mask: torch.Tensor, length: int, mode: str, dtype: torch.dtype
) -> torch.Tensor:
    """The padding mask [B, L] in one of `MASK_MODES`: as is, or as an additive 4-D bias."""
    if mode == "2d":
        return attention_mask
    keep = attention_mask[:, None, None, :].bool()
    if mode == "causal-4d":
        causal = torch.ones(length, length, dtype=torch.bool, device=keep.device).tril()
        keep = keep & causal
    zero = torch.zeros((), dtype=dtype, device=keep.device)
    return torch.where(keep, zero, torch.finfo(dtype).min)


@dataclass
class ReferenceTextClassifiers(StackedModels):
    """K reference text classifiers; `logits(texts)` is [K, n, C], queried in one vmapped call
    per batch."""

    tokenizer: Any = None
    device: str = "cpu"

    def logits(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        max_length: int = 128,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Logits [K, n, num_labels] as float32 in the order of `texts`; texts are batched by
        tokenized length, longest first, to cut padding as the target's scoring does, and
        `batch_size=None` sizes batches to the GPU's free memory for the K models."""
        if (batch_size is not None and batch_size < 1) or max_length < 1:
            raise ValueError("batch_size and max_length must be positive")
        texts = list(texts)
        if any(not isinstance(text, str) for text in texts):
            raise TypeError("texts must be strings")
        assert isinstance(self.template, SequenceLogits)
        num_labels = self.template.model.config.num_labels
        if num_labels is None:
            raise ValueError("the target's config gives no number of labels")
        out = np.empty((self.n_models, len(texts), num_labels), dtype=np.float32)
        if not texts:
            return out
        max_length = _max_length(self.tokenizer, max_length)
        encoded = self.tokenizer(
            cut_for_tokenizer(texts, max_length), truncation=True, max_length=max_length
        )["input_ids"]
        pad_id = self.tokenizer.pad_token_id
        size = batch_size_for(
            batch_size,
            self.device,
            self.template.model.config,
            max(map(len, encoded)),
            n_models=self.n_models,
        )
        parts: list[torch.Tensor] = []
        done: list[np.ndarray] = []
        n_scored = 0

        def score(batch: np.ndarray) -> None:
            nonlocal n_scored
            ids, mask = pad_batch([encoded[i] for i in batch], pad_id)
            parts.append(
                self.forward_all(to_device(ids, self.device), to_device(mask, self.device)).float()
            )
            done.append(batch)
            n_scored += len(batch)
            if progress is not None:  # from the Python count: no device sync per batch
                progress(n_scored, len(texts))

        in_batches(longest_first_order(encoded), size, score)
        with torch.inference_mode():
            out[:, np.concatenate(done)] = torch.cat(parts, dim=1).cpu().numpy()
        return out


def train_reference_text_classifiers(
    target_dir: Path,
    texts: Sequence[str],
    label_ids: np.ndarray,
    masks: np.ndarray,
    config: TrainConfig,
    *,
    init: Literal["config", "pretrained"] = "config",
    base_dir: Path | None = None,
    together: bool = True,
    device: str | None = None,
    progress: Progress | None = None,
    only: Sequence[int] | None = None,
) -> ReferenceTextClassifiers:
    """Train K = len(masks) copies of the target's architecture, model k on the texts where
    masks[k] is True, with the target's tokenizer.

    `only` trains a block of the K (a shard): reference k keeps the initialisation (seed + k),
    data order, batch size and steps it has when all K train together, so shards can run on
    different workers; dropout is drawn per shard, seeded by its first reference.

    init="config": weights freshly initialised from the target's config (seed + k), never the
    target's weights, which saw the members. init="pretrained": start from `base_dir` (a
    `save_pretrained` folder the target was fine-tuned from), with a new classification head
    (seed + k) when the base has none of the right size. Only local files are read and no
    remote code runs, as for the target itself. `training_seconds` covers building,
    tokenizing and training; `trained_together` says whether one vmapped step trained all K.
    """
    started = time.perf_counter()
    device = device or default_device()
    target_dir = Path(target_dir)
    texts = list(texts)
    labels = np.asarray(label_ids)
    masks = np.asarray(masks)
    if labels.shape != (len(texts),) or masks.ndim != 2 or masks.shape[1] != len(texts):
        raise ValueError("need label_ids [n] and masks [K, n] for the n texts")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("label_ids must be class indices (integers)")
    if init == "pretrained" and base_dir is None:
        raise ValueError('init="pretrained" needs base_dir, the base model the target came from')
    if init not in ("config", "pretrained"):
        raise ValueError(f'init must be "config" or "pretrained", got {init!r}')

    tokenizer = AutoTokenizer.from_pretrained(
        target_dir, local_files_only=True, trust_remote_code=False
    )
    target_config = AutoConfig.from_pretrained(
        target_dir, local_files_only=True, trust_remote_code=False
    )
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # decoder classifiers ship without one
    if tokenizer.pad_token_id is None:
        raise ValueError("the target's tokenizer has neither a pad nor an end-of-text token")
    if target_config.pad_token_id is None:
        target_config.pad_token_id = tokenizer.pad_token_id
    num_labels = int(target_config.num_labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(f"label_ids must lie in [0, {num_labels})")

    def make_model() -> nn.Module:
        if init == "config":
            model = AutoModelForSequenceClassification.from_config(
                copy.deepcopy(target_config), attn_implementation="eager"
            )
        else:
            assert base_dir is not None  # checked above
            model = AutoModelForSequenceClassification.from_pretrained(
                base_dir,
                local_files_only=True,
                use_safetensors=True,
                trust_remote_code=False,
                num_labels=num_labels,
                id2label=target_config.id2label,
                label2id=target_config.label2id,
                pad_token_id=target_config.pad_token_id,
                ignore_mismatched_sizes=True,
                attn_implementation="eager",
            )
        return SequenceLogits(model)

    max_length = _max_length(tokenizer, config.max_length)
    encoded = tokenizer(
        cut_for_tokenizer(list(texts), max_length), truncation=True, max_length=max_length
    )["input_ids"]
    label_tensor = torch.as_tensor(labels, dtype=torch.long)
    pad_id = tokenizer.pad_token_id

    def make_batch(indices: np.ndarray) -> Batch:
        """Each model's texts padded to the longest text of the step, as [K', B, L]."""
        rows = [encoded[i] for i in indices.ravel()]
        ids, mask = pad_batch(rows, pad_id)
        shape = (*indices.shape, ids.shape[-1])
        index = torch.as_tensor(indices)
        return (
            (to_device(ids.view(shape), device), to_device(mask.view(shape), device)),
            to_device(label_tensor[index], device),
        )

    plan, steps_per_epoch = minibatch_plan(masks, config)  # over all K: equal work per model
    chosen = list(range(len(masks))) if only is None else [int(k) for k in only]
    if (
        not chosen
        or len(set(chosen)) != len(chosen)
        or not 0 <= min(chosen) <= max(chosen) < len(masks)
    ):
        raise ValueError(f"only must name distinct references in [0, {len(masks)})")
    if only is None:
        models = cast(
            list[SequenceLogits], build_models(make_model, len(masks), config.seed, device)
        )
    else:
        plan = plan[:, chosen, :]
        models = cast(
            list[SequenceLogits],
            [build_models(make_model, 1, config.seed + k, device)[0] for k in chosen],
        )
        config = replace(config, seed=config.seed + chosen[0])  # the shard's dropout stream
    # Probed even for sequential training: querying K models in one vmapped call still pays.
    mode, why = _vmappable_mask_mode(models, make_batch, encoded, len(models))
    note = None
    if mode is None:
        note = f"not vmapped: {why}"
        together = False
    else:
        models[0].mask_mode = mode  # the template: every stacked forward goes through it
    stacked = fit_models(
        models,
        make_batch,
        plan,
        steps_per_epoch,
        config,
        together=together,
        device=device,
        progress=progress,
    )
    return ReferenceTextClassifiers(
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
    )


def _vmappable_mask_mode(
    models: list[SequenceLogits],
    make_batch: Callable[[np.ndarray], Batch],
    encoded: list[list[int]],
    k: int,
) -> tuple[str | None, str]:
    """The first mask form under which the vmapped forward gives each model's own logits, on
    texts of different lengths so padding is exercised; None and the reasons if none does."""
    (ids, mask), _ = make_batch(np.tile(probe_rows(encoded), (k, 1)))
    for model in models:
        model.eval()
    params, buffers = stack_module_state(models)
    with torch.no_grad():
        expected = torch.stack([model(ids[j], mask[j]) for j, model in enumerate(models)])
    return vmappable_mask_mode(models[0], params, buffers, (ids, mask), expected)


def probe_rows(encoded: list[list[int]]) -> np.ndarray:
    """Up to 8 rows of different lengths, shortest to longest, so the probe pads some."""
    lengths = np.asarray([len(ids) for ids in encoded])
    picks = np.argsort(lengths, kind="stable")[np.linspace(0, len(lengths) - 1, 8).astype(int)]
    return np.unique(picks)


def vmappable_mask_mode(
    template: MaskModeModule,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    inputs: tuple[torch.Tensor, torch.Tensor],
    expected: torch.Tensor,
) -> tuple[str | None, str]:
    """The first of `MASK_MODES` (set on `template.mask_mode`) under which one vmapped
    `functional_call` over the stacked state gives `expected` [K, ...], each model's own plain
    2-D-mask output on `inputs` (ids and mask [K, B, L]); None and the reasons if none does."""
    reasons = []
    try:
        with torch.no_grad():
            for mode in MASK_MODES:
                template.mask_mode = mode
                try:
                    got = vmap(lambda p, b, i, m: functional_call(template, (p, b), (i, m)))(
                        params, buffers, *inputs
                    )
                except (RuntimeError, NotImplementedError, ValueError, TypeError) as error:
                    reasons.append(f"{mode}: {type(error).__name__}: {str(error)[:200]}")
                    continue
                if torch.allclose(got, expected, rtol=1e-3, atol=1e-4):
                    return mode, ""
                reasons.append(f"{mode}: outputs differ from the plain forward")
    finally:
        template.mask_mode = "2d"
    return None, "vmap cannot run this architecture (" + "; ".join(reasons) + ")"


def _max_length(tokenizer: Any, max_length: int) -> int:
    """The requested token budget, capped at what the tokenizer (and so the model) allows."""
    limit = getattr(tokenizer, "model_max_length", None)
    return min(max_length, int(limit)) if isinstance(limit, int) and limit > 0 else max_length
