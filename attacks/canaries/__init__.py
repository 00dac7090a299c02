"""Canaries: generate secrets, plant them at random, measure exposure and extraction."""

from attacks.canaries.audit import CanaryOptions, measure_canaries
from attacks.canaries.generation import (
    BUILT_IN_TEMPLATES,
    Canary,
    Template,
    generate_canaries,
    training_records,
)

__all__ = [
    "BUILT_IN_TEMPLATES",
    "Canary",
    "CanaryOptions",
    "Template",
    "generate_canaries",
    "measure_canaries",
    "training_records",
]
