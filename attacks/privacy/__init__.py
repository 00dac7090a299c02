"""Privacy auditing: accounted and empirical epsilon, and the verdict on a DP claim."""

from attacks.privacy.empirical import (
    attack_bounds,
    clopper_pearson,
    clopper_pearson_upper,
    epsilon_from_mu,
    epsilon_from_rates,
    epsilon_lower_bound,
    family_bounds,
    methods_for,
)
from attacks.privacy.verdict import decide

__all__ = [
    "attack_bounds",
    "clopper_pearson",
    "clopper_pearson_upper",
    "decide",
    "epsilon_from_mu",
    "epsilon_from_rates",
    "epsilon_lower_bound",
    "family_bounds",
    "methods_for",
]
