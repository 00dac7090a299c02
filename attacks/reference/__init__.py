"""Reference models for LiRA and RMIA: who trains on what, and K small models trained at once."""

from attacks.reference.masks import inclusion_masks
from attacks.reference.text import ReferenceTextClassifiers, train_reference_text_classifiers
from attacks.reference.training import (
    ReferenceMLPs,
    StackedModels,
    TrainConfig,
    minibatch_plan,
    train_reference_mlps,
)

__all__ = [
    "ReferenceMLPs",
    "ReferenceTextClassifiers",
    "StackedModels",
    "TrainConfig",
    "inclusion_masks",
    "minibatch_plan",
    "train_reference_mlps",
    "train_reference_text_classifiers",
]
