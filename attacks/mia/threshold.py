"""The threshold attack: one signal, oriented so that a higher score means "member"."""

from __future__ import annotations

import numpy as np

from attacks.lm_signals import LM_SIGNAL_DIRECTION
from attacks.mia.base import AttackInputs, signal
from attacks.signals import SIGNAL_DIRECTION

# Classifier and causal-LM signals share one name space; "loss" points the same way in both.
DIRECTIONS: dict[str, int] = {**LM_SIGNAL_DIRECTION, **SIGNAL_DIRECTION}


class ThresholdAttack:
    """Score each record by a single signal of the target (Yeom et al., 2018); sweeping a
    threshold on the scores gives the attack's ROC, so no threshold is fixed here."""

    needs_references = False
    needs_population = False

    def __init__(self, signal: str) -> None:
        if signal not in DIRECTIONS:
            known = ", ".join(sorted(DIRECTIONS))
            raise ValueError(f"unknown signal {signal!r} (known: {known})")
        self.signal = signal
        self.name = signal

    def score(self, inputs: AttackInputs) -> np.ndarray:
        """Membership scores, higher = more likely member."""
        return signal(inputs.target, self.signal, "the target") * DIRECTIONS[self.signal]

    def __repr__(self) -> str:
        return f"ThresholdAttack(signal={self.signal!r})"
