"""Per-record membership signals computed from a classifier's logits, in stable float64."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

SIGNAL_DIRECTION: dict[str, int] = {
    "loss": -1,  # members were fitted, so their loss is lower
    "confidence": +1,  # ... and the model is more confident on their true label
}


def classifier_signals(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Loss, logit-scaled confidence and correctness of the true label for each record.

    The confidence is log p_y - log(1 - p_y), computed as logit_y minus the logsumexp of the
    other logits, so it stays finite and ordered when p_y rounds to 1 (Carlini et al., 2022).
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape [n, num_labels >= 2], got {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be class indices (integers), got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got a label out of range")
    if not np.all(np.isfinite(logits)):
        raise ValueError("logits contain NaN or infinite values")

    rows = np.arange(logits.shape[0])
    true_logit = logits[rows, labels]
    others = logits.copy()
    others[rows, labels] = -np.inf
    confidence = true_logit - logsumexp(others, axis=1)
    return {
        # -log p_y = log(1 + exp(-confidence)): keeps tiny member losses apart from zero
        "loss": np.logaddexp(0.0, -confidence),
        "confidence": confidence,
        "correct": np.argmax(logits, axis=1) == labels,
    }
