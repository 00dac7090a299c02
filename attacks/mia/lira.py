"""LiRA (Carlini et al., 2022): a record's confidence against Gaussian fits on IN and OUT models."""

from __future__ import annotations

import numpy as np

from attacks.mia.base import AttackInputs, in_mask, masked_moments, signal


class LiRA:
    """Likelihood-ratio attack on the logit-scaled confidence, online or offline.

    Online: log N(x; mu_in, s_in^2) - log N(x; mu_out, s_out^2) with Gaussians fitted to the
    record's IN and OUT reference values. Offline (no IN models): the one-sided test against the
    OUT fit, scored as -log P(OUT value >= x), so a record far above its OUT values ranks high.

    Variance: per record (`global_variance=False`) or one variance shared by the IN and OUT fits
    of every record (`global_variance=True`, LiRA's "fixed variance", better with few models):
    the within-record variance pooled over records. A record needs two values of a kind for its
    own variance, so with 1 reference model (and with 2 under the paired design, where each
    record has one IN and one OUT value) per-record variance is undefined and the global one is
    used; when not even the pooled estimate exists, the spread of all reference values is used,
    which then only scales the scores, as every record shares it. Variances are floored at
    `min_variance`, so equal reference values (e.g. saturated confidence) do not turn rounding
    noise into certainty.

    Missing fits: with few models a record may have no IN (or no OUT) value. Online, its missing
    mean is the other mean shifted by the average IN - OUT gap over all records; offline, a
    record without OUT values is compared with the mean of all OUT values.
    """

    signal = "confidence"
    needs_references = True
    needs_population = False

    def __init__(
        self, online: bool = True, global_variance: bool = False, *, min_variance: float = 1e-4
    ) -> None:
        if not min_variance > 0:
            raise ValueError("min_variance must be positive")
        self.online = online
        self.global_variance = global_variance
        self.min_variance = min_variance
        self.name = "lira" + ("" if online else "-offline") + ("-global" if global_variance else "")

    def score(self, inputs: AttackInputs) -> np.ndarray:
        """Membership scores, higher = more likely member."""
        x = signal(inputs.target, self.signal, "the target")
        values = signal(inputs.references, self.signal, "reference models")
        is_in = in_mask(inputs.reference_in, values.shape)
        is_out = ~is_in
        if not is_out.any():
            raise ValueError(
                "LiRA needs OUT reference values: every reference model trained on every record"
            )
        if self.online and not is_in.any():
            raise ValueError(
                "online LiRA needs reference models trained on the audited records "
                "(reference_in has no True); use offline LiRA"
            )
        from scipy.stats import norm  # lazily: scipy.stats costs the API ~0.5 s at start-up

        mean_out, var_out, count_out = masked_moments(values, is_out)
        if not self.online:
            mean_out = np.where(count_out > 0, mean_out, values[is_out].mean())
            shared = self._pooled_variance(values, [is_out])
            var_out = self._variance(var_out, count_out, shared)
            return -norm.logsf(x, loc=mean_out, scale=np.sqrt(var_out))

        mean_in, var_in, count_in = masked_moments(values, is_in)
        gap = values[is_in].mean() - values[is_out].mean()
        mean_in = np.where(count_in > 0, mean_in, mean_out + gap)
        mean_out = np.where(count_out > 0, mean_out, mean_in - gap)
        shared = self._pooled_variance(values, [is_in, is_out])
        var_in = self._variance(var_in, count_in, shared)
        var_out = self._variance(var_out, count_out, shared)
        return norm.logpdf(x, loc=mean_in, scale=np.sqrt(var_in)) - norm.logpdf(
            x, loc=mean_out, scale=np.sqrt(var_out)
        )

    def _variance(self, own: np.ndarray, count: np.ndarray, shared: float) -> np.ndarray:
        """Per-record variance where a record has two values of the kind, else the shared one."""
        if self.global_variance:
            chosen = np.full(own.shape, shared)
        else:
            chosen = np.where(count >= 2, own, shared)
        return np.maximum(chosen, self.min_variance)

    def _pooled_variance(self, values: np.ndarray, masks: list[np.ndarray]) -> float:
        """Within-record variance pooled over records (and over the kinds in `masks`), with one
        degree of freedom spent per record mean; the spread of all values if none is left."""
        squares, freedom = 0.0, 0
        for mask in masks:
            mean, _, count = masked_moments(values, mask)
            residuals = np.where(mask, values - np.nan_to_num(mean), 0.0)
            squares += float((residuals**2).sum())
            freedom += int(count.sum() - np.count_nonzero(count))
        if freedom > 0:
            return squares / freedom
        pooled = np.concatenate([values[mask] for mask in masks])
        return float(pooled.var()) if pooled.size > 1 else 1.0

    def __repr__(self) -> str:
        return f"LiRA(online={self.online}, global_variance={self.global_variance})"
