"""Canaries: generate secrets, plant them at random, measure exposure and extraction.

Generation is torch-free and re-exported here (the API imports it); measuring needs a model, so
it lives in `attacks.canaries.audit`, imported only where canaries are measured.
"""

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
    "Template",
    "generate_canaries",
    "training_records",
]
