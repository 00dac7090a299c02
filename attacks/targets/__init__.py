"""Audited models wrapped as black boxes: classifiers return logits, causal LMs token stats."""

from attacks.targets.causal_lm import CausalLM
from attacks.targets.text_classifier import TextClassifier

__all__ = ["CausalLM", "TextClassifier"]
