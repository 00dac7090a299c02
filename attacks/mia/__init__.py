"""Membership-inference attacks: signals in, membership scores (higher = member) out."""

from attacks.mia.base import AttackInputs, MembershipAttack
from attacks.mia.lira import LiRA
from attacks.mia.registry import ATTACKS, get_attack
from attacks.mia.rmia import RMIA
from attacks.mia.threshold import ThresholdAttack

__all__ = [
    "ATTACKS",
    "RMIA",
    "AttackInputs",
    "LiRA",
    "MembershipAttack",
    "ThresholdAttack",
    "get_attack",
]
