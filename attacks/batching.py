"""Batches of token rows for forward passes: longest first, padded only to each batch's longest.

Every scorer (target classifiers and language models, reference models, the demo's training
loop) batches this way: sorting by length cuts padding, and longest first makes an
out-of-memory show on the first batch rather than after most of the work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


def longest_first(rows: Sequence[Sequence[int]], batch_size: int) -> Iterator[np.ndarray]:
    """Indices of `rows` in batches of `batch_size`, longest rows first (ties keep order)."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


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
