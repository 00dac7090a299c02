"""Privacy auditing: empirical epsilon lower bounds and the verdict on a DP claim."""

from attacks.privacy.empirical import (
    clopper_pearson,
    clopper_pearson_upper,
    epsilon_from_rates,
    epsilon_lower_bound,
)
from attacks.privacy.verdict import decide

__all__ = [
    "clopper_pearson",
    "clopper_pearson_upper",
    "decide",
    "epsilon_from_rates",
    "epsilon_lower_bound",
]
