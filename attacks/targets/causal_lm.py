"""A Hugging Face causal LM loaded from a local folder, scored once per token for LM signals."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from attacks.batching import in_batches, longest_first_order, pad_batch
from attacks.device import autocast_for, batch_size_for, to_device
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
    so padding on either side is ignored. Rows are done one at a time (`_row_statistics`).
    Works in float64 when the logits are float64 (tests), float32 otherwise. Reads the mask on
    the host, row by row: for any padding; `CausalLM` scores right-padded batches without it.
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
    rows: list[RecordTokens] = []
    for row in range(logits.shape[0]):
        positions = predicted[row].nonzero()[:, 0]
        if positions.numel() == 0:
            raise ValueError(f"row {row} has fewer than two real tokens: nothing is predicted")
        first, count = int(positions[0]), positions.numel()
        # Padding on one side only leaves the predicted positions contiguous: the row is then
        # a view of the logits, not a copy.
        contiguous = int(positions[-1]) - first + 1 == count
        row_logits = (
            logits[row, first : first + count]
            if contiguous
            else logits[row].index_select(0, positions)
        )
        out = torch.empty((3, count), dtype=dtype, device=logits.device)
        _row_statistics(row_logits, input_ids[row, 1:][positions], out)
        log_p, mu, sigma = out.double().cpu().numpy()
        rows.append((log_p, mu, sigma))
    return rows


def _row_statistics(logits: torch.Tensor, targets: torch.Tensor, out: torch.Tensor) -> None:
    """Write log p(target), mu and sigma of each position of one record's [positions, vocab]
    logits into the rows of `out` [3, positions], computed in `out`'s dtype (float32 from
    bf16 or fp16 logits). On the CPU in blocks of positions, so only one small block is alive
    besides the logits and the work stays in cache; on a GPU the whole record at once."""
    count = logits.shape[0]
    step = count if logits.is_cuda else max(1, _BLOCK_ELEMENTS // logits.shape[-1])
    for start in range(0, count, step):
        stop = min(start + step, count)
        block = logits[start:stop].to(out.dtype)
        for index, values in enumerate(_block_statistics(block, targets[start:stop])):
            out[index, start:stop] = values


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
        batch_size: int | None = 16,
        max_length: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> TokenStats:
        """Per-token log p, mu and sigma for every text, in the order of `texts`.

        Each text is cut to its first `max_length` tokens (and the model's context length);
        zlib sizes are then measured on the part that was scored. Texts are batched by length
        to cut padding; mixed precision is used on CUDA only. Raises ValueError naming the
        first record that has fewer than two tokens, before any model work.
        """
        if (batch_size is not None and batch_size < 1) or max_length < 2:
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

        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        size = batch_size_for(
            batch_size, self.device, self.model.config, max(map(len, ids)), lm_logits=True
        )
        # Every record's statistics go into one flat device tensor [3, predicted tokens], at
        # bounds known on the host: one copy to the host at the end, no sync per batch.
        counts = np.fromiter((len(row) - 1 for row in ids), dtype=np.int64, count=len(ids))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        dtype = torch.float64 if self.model.dtype == torch.float64 else torch.float32
        flat = torch.empty((3, int(bounds[-1])), dtype=dtype, device=self.device)
        n_scored = 0

        def score(batch: np.ndarray) -> None:
            nonlocal n_scored
            # On the right whatever the tokenizer's padding side, so that real tokens keep
            # positions 0..L-1 and never attend to padding (which comes after them); record
            # i's predicted positions are then 0..counts[i]-1, known without reading the mask.
            input_ids, attention_mask = (
                to_device(t, self.device) for t in pad_batch([ids[i] for i in batch], pad_id)
            )
            with autocast_for(self.device):
                logits = self.model(
                    input_ids=input_ids, attention_mask=attention_mask, use_cache=False
                ).logits
            for row, index in enumerate(batch):
                start, stop = int(bounds[index]), int(bounds[index + 1])
                _row_statistics(
                    logits[row, : stop - start],
                    input_ids[row, 1 : stop - start + 1],
                    flat[:, start:stop],
                )
            del logits
            n_scored += len(batch)
            if progress is not None:  # from the Python count: no device sync per batch
                progress(n_scored, len(texts))

        with torch.inference_mode():
            in_batches(longest_first_order(ids), size, score)
            host = flat.cpu().numpy().astype(np.float64)
        log_p, mu, sigma = (
            [host[part, bounds[i] : bounds[i + 1]] for i in range(len(ids))] for part in range(3)
        )
        return TokenStats.from_arrays(scored, log_p, mu, sigma)


def _scored_text(
    text: str, spans: Sequence[tuple[int, int]] | None, n_tokens: int, max_length: int
) -> str:
    """The part of `text` the model saw: up to the last kept token's end when truncation cut
    real content, so the zlib ratio compares the loss with the entropy of the same text."""
    if spans is None or n_tokens < max_length:
        return text
    end = max((stop for _, stop in spans), default=len(text))
    return text[:end] if text[end:].strip() else text
