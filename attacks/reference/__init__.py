"""Reference models for LiRA and RMIA: who trains on what, and K small models trained at once."""

from attacks.reference.lora import (
    ReferenceLMAdapters,
    lm_reference_signals,
    train_reference_lm_adapters,
)
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
    "ReferenceLMAdapters",
    "ReferenceMLPs",
    "ReferenceTextClassifiers",
    "StackedModels",
    "TrainConfig",
    "inclusion_masks",
    "lm_reference_signals",
    "minibatch_plan",
    "train_reference_lm_adapters",
    "train_reference_mlps",
    "train_reference_text_classifiers",
]
