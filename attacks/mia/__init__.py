"""Membership-inference attacks: signals in, membership scores (higher = member) out."""

from attacks.mia.base import AttackInputs, MembershipAttack
from attacks.mia.lira import LiRA
from attacks.mia.registry import ATTACKS, ATTACKS_BY_GROUP, get_attack, group_of
from attacks.mia.rmia import RMIA
from attacks.mia.threshold import ThresholdAttack

__all__ = [
    "ATTACKS",
    "ATTACKS_BY_GROUP",
    "RMIA",
    "AttackInputs",
    "LiRA",
    "MembershipAttack",
    "ThresholdAttack",
    "get_attack",
    "group_of",
]
