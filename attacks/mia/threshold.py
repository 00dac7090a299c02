"""The threshold attack: one signal, oriented so that a higher score means "member"."""

from __future__ import annotations

import numpy as np

from attacks.signals import SIGNAL_DIRECTION


class ThresholdAttack:
    """Score each record by a single signal (Yeom et al., 2018); sweeping a threshold on the
    scores gives the attack's ROC, so no threshold is fixed here."""

    def __init__(self, signal: str) -> None:
        if signal not in SIGNAL_DIRECTION:
            known = ", ".join(sorted(SIGNAL_DIRECTION))
            raise ValueError(f"unknown signal {signal!r} (known: {known})")
        self.signal = signal
        self.name = signal

    def score(self, signals: dict[str, np.ndarray]) -> np.ndarray:
        """Membership scores, higher = more likely member."""
        if self.signal not in signals:
            raise KeyError(f"signal {self.signal!r} not computed (have: {', '.join(signals)})")
        values = np.asarray(signals[self.signal], dtype=np.float64)
        return values * SIGNAL_DIRECTION[self.signal]

    def __repr__(self) -> str:
        return f"ThresholdAttack(signal={self.signal!r})"
