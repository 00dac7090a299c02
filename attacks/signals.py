"""Per-record membership signals computed from a classifier's logits, in stable float64."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp

SIGNAL_DIRECTION: dict[str, int] = {
    "loss": -1,  # members were fitted, so their loss is lower
    "confidence": +1,  # ... and the model is more confident on their true label
    "probability": +1,  # ... which is the same ordering on the probability scale
    "hinge": +1,  # ... and the true logit stands further above the best other one
    "modified_entropy": -1,  # ... and the prediction is sharp and right (Song & Mittal, 2021)
}


def classifier_signals(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Every classifier signal of each record, so attacks never go back to the model.

    - loss: -log p_y.
    - confidence: log p_y - log(1 - p_y), computed as logit_y minus the logsumexp of the
      other logits, so it stays finite and ordered when p_y rounds to 1 (Carlini et al., 2022).
    - probability: p_y, the true-class probability (RMIA's Pr(x | theta)).
    - hinge: logit_y minus the largest other logit.
    - modified_entropy: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i) (Song & Mittal,
      2021); low when the model is sharp and right, high when it is sharp and wrong.
    - correct: whether the arg-max class is the label.
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
    # -log p_y = log(1 + exp(-confidence)): keeps tiny member losses apart from zero
    loss = np.logaddexp(0.0, -confidence)
    return {
        "loss": loss,
        "confidence": confidence,
        "probability": expit(confidence),
        "hinge": true_logit - others.max(axis=1),
        "modified_entropy": _modified_entropy(logits, labels, loss, confidence),
        "correct": np.argmax(logits, axis=1) == labels,
    }


def _modified_entropy(
    logits: np.ndarray, labels: np.ndarray, loss: np.ndarray, confidence: np.ndarray
) -> np.ndarray:
    """Mentr from log-probabilities only, so no p or 1 - p is rounded to 0 before its log.

    log(1 - p_i) is exact from logits: log1p(-p_i) is accurate while p_i <= 1/2, and only the
    arg-max class can exceed 1/2; for it log(1 - p_i) = logsumexp(others) - logsumexp(all).
    For the true class, log(1 - p_y) = log p_y - confidence.
    """
    rows = np.arange(logits.shape[0])
    log_p = logits - logsumexp(logits, axis=1, keepdims=True)
    p = np.exp(log_p)
    log_1m_p = np.log1p(-np.minimum(p, 0.5))
    top = np.argmax(logits, axis=1)
    without_top = logits.copy()
    without_top[rows, top] = -np.inf
    log_1m_p[rows, top] = logsumexp(without_top, axis=1) - logsumexp(logits, axis=1)
    log_1m_py = -loss - confidence
    true_term = np.exp(log_1m_py) * loss  # -(1 - p_y) log p_y
    other_terms = -p * log_1m_p
    other_terms[rows, labels] = 0.0
    return true_term + other_terms.sum(axis=1)
