"""Which records each reference model trains on: the inclusion design behind LiRA and RMIA."""

from __future__ import annotations

import numpy as np


def inclusion_masks(n: int, k: int, *, seed: int) -> np.ndarray:
    """Bool [k, n]: record i is in reference model j's training set.

    For even k, models come in complementary pairs (2j trains on a random half, 2j + 1 on the
    rest), so every record is IN for exactly k/2 models (the paired design LiRA's online attack
    needs) and every even-length prefix of the models is balanced too: one set of k models can
    be evaluated at any even k' < k. For odd k (k = 1 included) each model trains on its own
    random half, drawn independently.
    """
    if n < 2:
        raise ValueError("need at least two records to split into halves")
    if k < 1:
        raise ValueError("need at least one reference model")
    rng = np.random.default_rng(seed)
    masks = np.zeros((k, n), dtype=bool)
    if k % 2:
        for j in range(k):
            masks[j] = rng.permutation(n) < n // 2
        return masks
    for pair in range(k // 2):
        size = (n + pair % 2) // 2  # with odd n, pairs alternate which side gets the extra record
        half = rng.permutation(n) < size
        masks[2 * pair], masks[2 * pair + 1] = half, ~half
    return masks
