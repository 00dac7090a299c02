"""Causal-LM membership signals, all derived in numpy from per-token statistics computed once."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LM_SIGNAL_DIRECTION: dict[str, int] = {
    "loss": -1,  # members were fitted, so their mean token loss is lower
    "zlib": -1,  # ... lower still relative to how compressible the text is anyway
    "min_k": +1,  # ... and even their least likely tokens are fairly likely
    "min_k_plus_plus": +1,  # ... more likely than the model's own spread of predictions
    "reference_ratio": -1,  # ... lower than a model that never saw them
}


def zlib_length(text: str) -> int:
    """Bytes of the UTF-8 text compressed by zlib at its default level, as Carlini et al. do."""
    return len(zlib.compress(text.encode("utf-8")))


@dataclass(frozen=True)
class TokenStats:
    """Per-record arrays over the predicted tokens, so every signal comes from one forward pass.

    For record i and its predicted positions t = 1..L-1 (token t predicted from the prefix):
    `log_prob[i][t-1]` = log p(x_t); `mu[i]` = sum_v p(v) log p(v) (minus the entropy); `sigma[i]`
    = sqrt(sum_v p(v) (log p(v))^2 - mu^2), clipped below at a small epsilon. All float64.
    `n_bytes` and `zlib_bytes` are the UTF-8 and zlib-compressed lengths of the scored text.

    A record of a single token predicts nothing, so its signals would be NaN; it is rejected
    with a ValueError naming the record's index rather than silently dropped or scored NaN.
    """

    log_prob: list[np.ndarray]
    mu: list[np.ndarray]
    sigma: list[np.ndarray]
    n_bytes: np.ndarray
    zlib_bytes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.log_prob)
        if not (len(self.mu) == len(self.sigma) == len(self.n_bytes) == len(self.zlib_bytes) == n):
            raise ValueError(
                "log_prob, mu, sigma, n_bytes and zlib_bytes must cover the same records"
            )
        for index, (log_prob, mu, sigma) in enumerate(
            zip(self.log_prob, self.mu, self.sigma, strict=True)
        ):
            if log_prob.ndim != 1 or log_prob.shape != mu.shape or log_prob.shape != sigma.shape:
                raise ValueError(f"record {index}: log_prob, mu and sigma must be 1-D and alike")
            if log_prob.size == 0:
                raise ValueError(
                    f"record {index} has no predicted tokens (a text of one token or none)"
                )

    @classmethod
    def from_arrays(
        cls,
        texts: Sequence[str],
        log_prob: Sequence[np.ndarray],
        mu: Sequence[np.ndarray],
        sigma: Sequence[np.ndarray],
    ) -> TokenStats:
        """Build from per-record arrays and the scored texts, measuring the texts' sizes here."""

        def as_float(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
            return [np.asarray(array, dtype=np.float64) for array in arrays]

        return cls(
            log_prob=as_float(log_prob),
            mu=as_float(mu),
            sigma=as_float(sigma),
            n_bytes=np.array([len(text.encode("utf-8")) for text in texts], dtype=np.int64),
            zlib_bytes=np.array([zlib_length(text) for text in texts], dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.log_prob)

    @property
    def n_tokens(self) -> np.ndarray:
        """How many tokens each record had predicted (its length minus one)."""
        return np.array([array.size for array in self.log_prob], dtype=np.int64)


def lowest_mean(values: np.ndarray, k: float) -> float:
    """Mean of the lowest fraction k of `values`: floor(k * n) of them, at least one.

    The floor follows the Min-K% reference code; the tiny slack keeps e.g. 0.3 * 10 at 3.
    """
    _check_k(k)
    count = max(1, math.floor(k * values.size + 1e-9))
    return float(np.mean(np.partition(values, count - 1)[:count]))


def lm_signals(
    stats: TokenStats, *, k: float = 0.2, reference: TokenStats | None = None
) -> dict[str, np.ndarray]:
    """Per-record float64 signals; `LM_SIGNAL_DIRECTION` says which way means "member".

    - loss: mean token negative log-likelihood, i.e. the log-perplexity.
    - zlib: loss / zlib_bytes, the log-perplexity over the zlib entropy of the text (Carlini
      et al., 2021), with the entropy in compressed bytes; bits would only scale it by 1/8.
    - min_k: mean of the lowest k fraction of log p(x_t) (Shi et al., 2024).
    - min_k_plus_plus: mean of the lowest k fraction of (log p(x_t) - mu_t) / sigma_t
      (Zhang et al., 2024).
    - reference_ratio (only with `reference`, the same texts under a reference LM): target
      loss minus reference loss, the log of the perplexity ratio.
    """
    _check_k(k)
    loss = np.array([-np.mean(log_prob) for log_prob in stats.log_prob], dtype=np.float64)
    signals = {
        "loss": loss,
        "zlib": loss / stats.zlib_bytes.astype(np.float64),
        "min_k": np.array([lowest_mean(log_prob, k) for log_prob in stats.log_prob]),
        "min_k_plus_plus": np.array(
            [
                lowest_mean((log_prob - mu) / sigma, k)
                for log_prob, mu, sigma in zip(stats.log_prob, stats.mu, stats.sigma, strict=True)
            ]
        ),
    }
    if reference is not None:
        if len(reference) != len(stats):
            raise ValueError(
                f"the reference covers {len(reference)} records, the target {len(stats)}"
            )
        reference_loss = np.array([-np.mean(log_prob) for log_prob in reference.log_prob])
        signals["reference_ratio"] = loss - reference_loss
    return signals


def _check_k(k: float) -> None:
    if isinstance(k, bool) or not (isinstance(k, int | float) and 0 < k <= 1):
        raise ValueError(f"k must be a fraction in (0, 1], got {k!r}")
