"""The interface every membership-inference attack implements, so the registry can hold any."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class MembershipAttack(Protocol):
    """Turns per-record signals into membership scores: higher means more likely a member."""

    name: str

    def score(self, signals: dict[str, np.ndarray]) -> np.ndarray: ...
