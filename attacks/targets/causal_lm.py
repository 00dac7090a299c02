"""A Hugging Face causal LM loaded from a local folder, scored once per token for LM signals."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from attacks.batching import longest_first, pad_batch
from attacks.lm_signals import TokenStats
from attacks.report import TargetInfo
from attacks.targets.base import Target
from attacks.targets.loading import cut_for_tokenizer

SIGMA_EPSILON = 1e-6
"""Floor on sigma_t, so a near one-hot prediction cannot divide the Min-K%++ score by zero."""

RecordTokens = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(log_prob, mu, sigma) over one record's predicted tokens, float64."""


_BLOCK_ELEMENTS = 1 << 17
"""Logits reduced at once on the CPU (512 KiB of float32; with its few temporaries a block stays
in a core's L2 cache), and no [tokens, vocabulary] temporary is allocated per row. On GPT-2's
vocabulary this made the statistics about 3x cheaper at 32 tokens per record and 4x at 128
than one pass over each record's whole [tokens, vocabulary] slice."""

_LOG_P_FLOOR = -1e18
"""log p of masked (-inf) vocabulary entries is raised to this: p stays 0, so p * log p and
p * (log p - mu)^2 are 0 (0 * log 0 = 0) with no mask, and its square is finite in float32.
Every representable p > 0 has log p above -746, so no real entry is changed."""


def token_statistics_from_logits(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> list[RecordTokens]:
    """Per-row log p(x_t), mu_t and sigma_t from next-token logits [batch, length, vocab].

    Position t is predicted by the logits at t-1, and counts only when both are real tokens,
    so padding on either side is ignored. Rows are done one at a time, and on the CPU in
    blocks of positions: besides the logits, only one small [positions, vocab] block is alive,
    which keeps memory bounded for large vocabularies and the work in cache.
    Works in float64 when the logits are float64 (tests), float32 otherwise.
    """
    if logits.ndim != 3 or tuple(input_ids.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"logits must be [batch, length, vocab] and input_ids [batch, length], got "
            f"{tuple(logits.shape)} and {tuple(input_ids.shape)}"
        )
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    real = attention_mask.bool()
    predicted = real[:, 1:] & real[:, :-1]
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    step = logits.shape[1] if logits.is_cuda else max(1, _BLOCK_ELEMENTS // logits.shape[-1])
    rows: list[RecordTokens] = []
    for row in range(logits.shape[0]):
        positions = predicted[row].nonzero()[:, 0]
        if positions.numel() == 0:
            raise ValueError(f"row {row} has fewer than two real tokens: nothing is predicted")
        targets = input_ids[row, 1:][positions]
        first, count = int(positions[0]), positions.numel()
        # Padding on one side only leaves the predicted positions contiguous: blocks are then
        # views of the logits, not copies.
        contiguous = int(positions[-1]) - first + 1 == count
        blocks = [
            _block_statistics(
                (
                    logits[row, first + start : first + min(start + step, count)]
                    if contiguous
                    else logits[row].index_select(0, positions[start : start + step])
                ).to(dtype),
                targets[start : start + step],
            )
            for start in range(0, count, step)
        ]
        log_p, mu, sigma = (
            torch.cat(parts).double().cpu().numpy() for parts in zip(*blocks, strict=True)
        )
        rows.append((log_p, mu, sigma))
    return rows


def _block_statistics(
    logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p(target), mu and sigma of each position of a [positions, vocab] block."""
    log_p = torch.log_softmax(logits, dim=-1)
    log_prob = log_p.gather(-1, targets[:, None])[:, 0]
    log_p.clamp_min_(_LOG_P_FLOOR)
    p = log_p.exp()
    mu = (p * log_p).sum(-1)
    # Centred form of sum_v p (log p)^2 - mu^2: equal, but never negative from rounding.
    centred = log_p.sub_(mu[:, None]).square_()
    sigma = (p * centred).sum(-1).sqrt().clamp_min(SIGMA_EPSILON)
    return log_prob, mu, sigma


class CausalLM(Target):
    """The audited language model as a black box: texts in, per-token statistics out."""

    auto_class = AutoModelForCausalLM

    @property
    def context_length(self) -> int | None:
        """The most positions the model can take, when its config says."""
        value = getattr(self.model.config, "max_position_embeddings", None)
        return int(value) if value else None

    def target_info(self) -> TargetInfo:
        """What the report says about the audited model."""
        return TargetInfo(
            task="causal-lm",
            model_type=getattr(self.model.config, "model_type", None),
            n_parameters=self.n_parameters,
        )

    def token_statistics(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 16,
        max_length: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> TokenStats:
        """Per-token log p, mu and sigma for every text, in the order of `texts`.

        Each text is cut to its first `max_length` tokens (and the model's context length);
        zlib sizes are then measured on the part that was scored. Texts are batched by length
        to cut padding; mixed precision is used on CUDA only. Raises ValueError naming the
        first record that has fewer than two tokens, before any model work.
        """
        if batch_size < 1 or max_length < 2:
            raise ValueError("batch_size must be positive and max_length at least 2")
        texts = list(texts)
        if any(not isinstance(text, str) for text in texts):
            raise TypeError("texts must be strings")
        if self.context_length is not None:
            max_length = min(max_length, self.context_length)
        if not texts:
            return TokenStats.from_arrays([], [], [], [])
        texts = cut_for_tokenizer(texts, max_length)
        fast = bool(getattr(self.tokenizer, "is_fast", False))
        encoded = self.tokenizer(
            texts, truncation=True, max_length=max_length, return_offsets_mapping=fast
        )
        ids: list[list[int]] = encoded["input_ids"]
        for index, record_ids in enumerate(ids):
            if len(record_ids) < 2:
                raise ValueError(
                    f"record {index} has {len(record_ids)} token(s); at least two are needed "
                    "so that one is predicted from the text before it"
                )
        offsets = encoded["offset_mapping"] if fast else [None] * len(texts)
        scored = [
            _scored_text(text, spans, len(record_ids), max_length)
            for text, spans, record_ids in zip(texts, offsets, ids, strict=True)
        ]

        results: list[RecordTokens | None] = [None] * len(texts)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        n_scored = 0
        with torch.inference_mode(), self._autocast():
            for batch in longest_first(ids, batch_size):
                # On the right whatever the tokenizer's padding side, so that real tokens keep
                # positions 0..L-1 and never attend to padding (which comes after them).
                input_ids, attention_mask = (
                    t.to(self.device) for t in pad_batch([ids[i] for i in batch], pad_id)
                )
                logits = self.model(
                    input_ids=input_ids, attention_mask=attention_mask, use_cache=False
                ).logits
                rows = token_statistics_from_logits(logits, input_ids, attention_mask)
                del logits
                for index, row in zip(batch, rows, strict=True):
                    results[index] = row
                n_scored += len(batch)
                if progress is not None:
                    progress(n_scored, len(texts))
        done = [row for row in results if row is not None]
        return TokenStats.from_arrays(
            scored, [row[0] for row in done], [row[1] for row in done], [row[2] for row in done]
        )


def _scored_text(
    text: str, spans: Sequence[tuple[int, int]] | None, n_tokens: int, max_length: int
) -> str:
    """The part of `text` the model saw: up to the last kept token's end when truncation cut
    real content, so the zlib ratio compares the loss with the entropy of the same text."""
    if spans is None or n_tokens < max_length:
        return text
    end = max((stop for _, stop in spans), default=len(text))
    return text[:end] if text[end:].strip() else text
