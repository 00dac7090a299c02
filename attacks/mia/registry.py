"""Attacks by name, so audits can list and run them without knowing their classes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from attacks.mia.base import MembershipAttack
from attacks.mia.threshold import ThresholdAttack

ATTACKS: dict[str, Callable[[], MembershipAttack]] = {
    "loss": partial(ThresholdAttack, "loss"),
    "confidence": partial(ThresholdAttack, "confidence"),
}


def get_attack(name: str) -> MembershipAttack:
    """A fresh attack by its registry name."""
    try:
        factory = ATTACKS[name]
    except KeyError:
        raise KeyError(f"unknown attack {name!r} (known: {', '.join(ATTACKS)})") from None
    return factory()
