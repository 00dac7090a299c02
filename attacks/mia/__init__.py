"""Membership-inference attacks: signals in, membership scores (higher = member) out."""

from attacks.mia.base import MembershipAttack
from attacks.mia.registry import ATTACKS, get_attack
from attacks.mia.threshold import ThresholdAttack

__all__ = ["ATTACKS", "MembershipAttack", "ThresholdAttack", "get_attack"]
