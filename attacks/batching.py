"""Batches of token rows for forward passes: longest first, padded only to each batch's longest.

Every scorer (target classifiers and language models, reference models, canaries, the demo's
training loop) batches this way: sorting by length cuts padding, and longest first makes an
out-of-memory show on the first batch rather than after most of the work; `in_batches` then
halves the batch size and carries on instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch


def longest_first_order(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """Indices of `rows`, longest first (ties keep their order)."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    return np.argsort(-lengths, kind="stable")


def longest_first(rows: Sequence[Sequence[int]], batch_size: int) -> Iterator[np.ndarray]:
    """Indices of `rows` in batches of `batch_size`, longest rows first (ties keep order)."""
    order = longest_first_order(rows)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def in_batches(order: np.ndarray, batch_size: int, run: Callable[[np.ndarray], None]) -> int:
    """Call `run` on consecutive slices of `order`, `batch_size` at a time, and return the
    batch size that worked last.

    When a batch runs out of GPU memory the batch size is halved and the same records are run
    again (down to one record, which then raises), and the smaller size is kept for the rest:
    the batches after are no longer than it. `run` must therefore keep a batch's results only
    once it has finished. Never triggers on the CPU, which raises no such error.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    start = 0
    while start < len(order):
        batch = order[start : start + batch_size]
        try:
            run(batch)
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            failed = True
        else:
            failed = False
        if failed:  # outside the handler, so the failed batch's tensors are freed first
            batch_size = max(1, batch_size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        start += len(batch)
    return batch_size


def pad_batch(
    rows: Sequence[Sequence[int]], pad_id: int, *, left: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token rows to the longest: ids and attention mask [B, L] (int64), on the right
    unless `left` (for tokenizers that pad on the left)."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    width = int(lengths.max())
    positions = np.arange(width)
    mask = positions >= (width - lengths)[:, None] if left else positions < lengths[:, None]
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    ids[mask] = np.concatenate([np.asarray(row, dtype=np.int64) for row in rows])
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))
