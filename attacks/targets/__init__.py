"""Audited models wrapped as black boxes that return logits."""

from attacks.targets.text_classifier import TextClassifier

__all__ = ["TextClassifier"]
