"""Attacks by name, so audits can list and run them without knowing their classes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from attacks.enums import AttackGroup
from attacks.mia.base import MembershipAttack
from attacks.mia.lira import LiRA
from attacks.mia.rmia import RMIA
from attacks.mia.threshold import DIRECTIONS, ThresholdAttack

# What each attack reads from `AttackInputs`:
# - threshold attacks, one per signal (loss, confidence, probability, hinge, modified_entropy,
#   and the causal-LM signals zlib, min_k, min_k_plus_plus, reference_ratio): `target` only.
# - lira, lira-global: `references` (confidence) and `reference_in` with IN and OUT models per
#   record (online: references trained on random halves of data that include the audited ones).
# - lira-offline, lira-offline-global: `references` (confidence); only OUT values are used.
# - rmia: `references` (probability), `population_target` and `population_references`, with
#   `population_reference_in` when z were in some references' training sets.
# - rmia-offline: the same; only OUT values are used, with the `a` correction.
# Each attack also says so itself: `needs_references`, `needs_population`.
ATTACKS: dict[str, Callable[[], MembershipAttack]] = {
    **{name: partial(ThresholdAttack, name) for name in DIRECTIONS},
    "lira": partial(LiRA, online=True, global_variance=False),
    "lira-offline": partial(LiRA, online=False, global_variance=False),
    "lira-global": partial(LiRA, online=True, global_variance=True),
    "lira-offline-global": partial(LiRA, online=False, global_variance=True),
    "rmia": partial(RMIA, online=True),
    "rmia-offline": partial(RMIA, online=False),
}


def get_attack(name: str) -> MembershipAttack:
    """A fresh attack by its registry name."""
    try:
        factory = ATTACKS[name]
    except KeyError:
        raise KeyError(f"unknown attack {name!r} (known: {', '.join(ATTACKS)})") from None
    return factory()


def group_of(name: str) -> AttackGroup:
    """The attack's group, from what the attack itself says it needs."""
    return AttackGroup.REFERENCE if get_attack(name).needs_references else AttackGroup.THRESHOLD


# Registry names by group, in registry order (constructors only store parameters: cheap).
ATTACKS_BY_GROUP: dict[AttackGroup, tuple[str, ...]] = {
    group: tuple(name for name in ATTACKS if group_of(name) is group) for group in AttackGroup
}
