"""Bundled example for the README's first audit: a tiny bank-intent classifier that memorises."""

from app.example.intent import (
    INTENTS,
    ExampleFiles,
    build_example,
    make_intent_records,
    train_intent_classifier,
)

__all__ = [
    "INTENTS",
    "ExampleFiles",
    "build_example",
    "make_intent_records",
    "train_intent_classifier",
]
