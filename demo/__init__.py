"""The bundled demo (outside the service package): a tiny bank-intent classifier that memorises,
its data generator and training loop; `leakgate demo` and the tests and benches import it lazily."""

from demo.intent import (
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
