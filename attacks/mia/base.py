"""The signal arrays every membership-inference attack reads, and the interface it implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class AttackInputs:
    """Signals of the n audited records, and optionally of K reference models and m population
    records z (RMIA compares each record with z). Signals are computed once per record, so
    every attack is a pure function of these arrays and adding one never re-runs a model.

    `reference_in[k, i]` says whether record i was in reference model k's training set; None
    means no reference model trained on any audited record (the offline design), and likewise
    `population_reference_in` for the population records (None: z were OUT for every model).
    """

    target: dict[str, np.ndarray]
    references: dict[str, np.ndarray] | None = None
    reference_in: np.ndarray | None = None
    population_target: dict[str, np.ndarray] | None = None
    population_references: dict[str, np.ndarray] | None = None
    population_reference_in: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = _length(self.target, "target")
        k = None
        if self.references is not None:
            k = _stacked_shape(self.references, n, "references")
        _check_mask(self.reference_in, k, n, "reference_in", "references")
        if self.population_target is not None:
            m = _length(self.population_target, "population_target")
            k_population = None
            if self.population_references is not None:
                k_population = _stacked_shape(
                    self.population_references, m, "population_references"
                )
                if k is not None and k_population != k:
                    raise ValueError(
                        f"population_references come from {k_population} models, "
                        f"references from {k}"
                    )
            _check_mask(
                self.population_reference_in,
                k_population,
                m,
                "population_reference_in",
                "population_references",
            )
        elif self.population_references is not None or self.population_reference_in is not None:
            raise ValueError("population_references need population_target")

    @property
    def n_records(self) -> int:
        return len(next(iter(self.target.values())))

    @property
    def n_references(self) -> int:
        """K, the number of reference models (0 without any)."""
        if self.references is None:
            return 0
        return len(next(iter(self.references.values())))


class MembershipAttack(Protocol):
    """Turns signals into one membership score per audited record: higher = more likely member."""

    name: str
    needs_references: bool

    def score(self, inputs: AttackInputs) -> np.ndarray: ...


def signal(values: dict[str, np.ndarray] | None, name: str, where: str) -> np.ndarray:
    """One signal as float64, with an error that names what the caller forgot to compute."""
    if values is None:
        raise ValueError(f"this attack needs {where}, and none were given")
    if name not in values:
        have = ", ".join(values) or "none"
        raise KeyError(f"signal {name!r} not computed for {where} (have: {have})")
    return np.asarray(values[name], dtype=np.float64)


def in_mask(reference_in: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The IN mask; without one, no reference model trained on an audited record."""
    return np.zeros(shape, dtype=bool) if reference_in is None else np.asarray(reference_in)


def masked_moments(
    values: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-record mean, unbiased variance and count of the masked reference values; the mean
    is NaN without values and the variance NaN with fewer than two."""
    count = mask.sum(axis=0)
    total = np.where(mask, values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        squares = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0)
        variance = np.where(count >= 2, squares / np.maximum(count - 1, 1), np.nan)
    return mean, variance, count


def _length(signals: dict[str, np.ndarray], where: str) -> int:
    if not signals:
        raise ValueError(f"{where} holds no signals")
    lengths = {name: np.shape(values) for name, values in signals.items()}
    shapes = set(lengths.values())
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"{where} signals must all have the same shape [n], got {lengths}")
    return next(iter(shapes))[0]


def _stacked_shape(signals: dict[str, np.ndarray], n: int, where: str) -> int:
    if not signals:
        raise ValueError(f"{where} holds no signals")
    shapes = {name: np.shape(values) for name, values in signals.items()}
    distinct = set(shapes.values())
    shape = next(iter(distinct))
    if len(distinct) != 1 or len(shape) != 2 or shape[1] != n or shape[0] < 1:
        raise ValueError(
            f"{where} signals must all have the same shape [K >= 1, {n}], got {shapes}"
        )
    return shape[0]


def _check_mask(mask: np.ndarray | None, k: int | None, n: int, name: str, of: str) -> None:
    if mask is None:
        return
    if k is None:
        raise ValueError(f"{name} was given without {of}")
    if np.shape(mask) != (k, n) or np.asarray(mask).dtype != np.bool_:
        raise ValueError(
            f"{name} must be a bool array of shape ({k}, {n}), "
            f"got {np.asarray(mask).dtype} {np.shape(mask)}"
        )
