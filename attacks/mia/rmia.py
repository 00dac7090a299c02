"""RMIA (Zarifzadeh, Liu, Shokri, 2024): a record's Pr(x|theta)/Pr(x) against population ones."""

from __future__ import annotations

import numpy as np

from attacks.mia.base import AttackInputs, in_mask, masked_moments, signal

# Probabilities below this are taken as this, so their logs stay finite.
_TINY = np.finfo(np.float64).tiny


class RMIA:
    """Score(x) = fraction of population records z with LR(x) / LR(z) > gamma, where
    LR(r) = Pr(r | target) / Pr(r) on the true-class probability and Pr(r) is the average of
    Pr(r | reference) over the reference models.

    Online: Pr(r) averages all reference models (IN and OUT). Offline (OUT models only): the
    missing IN half is approximated linearly, Pr(r) = (1 + a)/2 * mean_OUT + (1 - a)/2; a = 1
    trusts the OUT mean as is, a = 0 halfway to 1. A record without OUT models is given the
    mean over all OUT values. Which models are OUT for z comes from `population_reference_in`
    (None: all of them).

    For a fixed gamma the score is a non-decreasing function of LR(x), so the population sets
    the score's scale and resolution (m + 1 levels) rather than the order of the records.
    """

    signal = "probability"
    needs_references = True
    needs_population = True

    def __init__(self, online: bool = True, a: float = 0.3, gamma: float = 1.0) -> None:
        if not 0.0 <= a <= 1.0:
            raise ValueError("a must lie in [0, 1]")
        if not gamma > 0:
            raise ValueError("gamma must be positive")
        self.online = online
        self.a = a
        self.gamma = gamma
        self.name = "rmia" if online else "rmia-offline"

    def score(self, inputs: AttackInputs) -> np.ndarray:
        """Membership scores in [0, 1], higher = more likely member."""
        if self.online and inputs.references is not None and not np.any(inputs.reference_in):
            raise ValueError(
                "online RMIA needs reference models trained on the audited records "
                "(reference_in has no True); use offline RMIA"
            )
        log_ratio_x = self.log_ratio(
            signal(inputs.target, self.signal, "the target"),
            signal(inputs.references, self.signal, "reference models"),
            inputs.reference_in,
        )
        log_ratio_z = np.sort(
            self.log_ratio(
                signal(inputs.population_target, self.signal, "population records"),
                signal(inputs.population_references, self.signal, "population records"),
                inputs.population_reference_in,
            )
        )
        # LR(x) / LR(z) > gamma  <=>  log LR(z) < log LR(x) - log gamma; ties do not count.
        below = np.searchsorted(log_ratio_z, log_ratio_x - np.log(self.gamma), side="left")
        return below / log_ratio_z.size

    def log_ratio(
        self, target: np.ndarray, references: np.ndarray, reference_in: np.ndarray | None
    ) -> np.ndarray:
        """log Pr(r | target) - log Pr(r) for each record r."""
        if self.online:
            marginal = references.mean(axis=0)
        else:
            is_out = ~in_mask(reference_in, references.shape)
            if not is_out.any():
                raise ValueError("offline RMIA needs reference models that did not train on x")
            mean_out, _, count_out = masked_moments(references, is_out)
            mean_out = np.where(count_out > 0, mean_out, references[is_out].mean())
            marginal = 0.5 * (1 + self.a) * mean_out + 0.5 * (1 - self.a)
        return np.log(np.maximum(target, _TINY)) - np.log(np.maximum(marginal, _TINY))

    def __repr__(self) -> str:
        return f"RMIA(online={self.online}, a={self.a}, gamma={self.gamma})"
