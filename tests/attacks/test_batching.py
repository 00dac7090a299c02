"""The one batching helper every scorer uses: longest rows first, padded per batch."""

from __future__ import annotations

import torch

from attacks.batching import longest_first, pad_batch


def test_batches_go_longest_first_and_cover_every_row_once() -> None:
    rows = [[1], [1, 2, 3], [1, 2], [4, 5, 6], []]
    batches = [batch.tolist() for batch in longest_first(rows, 2)]
    assert batches == [[1, 3], [2, 0], [4]]  # ties keep their order


def test_right_and_left_padding_keep_tokens_and_mask_them() -> None:
    rows = [[7, 8, 9], [5]]
    ids, mask = pad_batch(rows, 0)
    assert ids.tolist() == [[7, 8, 9], [5, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch(rows, 3, left=True)
    assert ids.tolist() == [[7, 8, 9], [3, 3, 5]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert ids.dtype == mask.dtype == torch.long
