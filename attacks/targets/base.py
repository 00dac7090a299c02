"""What every audited transformers model shares: local-only loading and its device (whose
precision, copies and batch sizes `attacks.device` decides). `TextClassifier` and `CausalLM`
add what their task reads off the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from attacks.targets.loading import load_local


class Target:
    """The audited model as a black box over texts; subclasses name their `auto_class`."""

    # The transformers Auto class that builds this task's model (AutoModelFor...).
    auto_class: ClassVar[Any]

    def __init__(self, model: Any, tokenizer: Any, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device

    @classmethod
    def load(
        cls, path: Path, device: str | None = None, *, tokenizer_dir: Path | None = None
    ) -> Self:
        """Load weights and tokenizer from a local folder only: safetensors, no remote code,
        so an uploaded model cannot run code or reach the network."""
        return cls(*load_local(cls.auto_class, path, device, tokenizer_dir))

    @property
    def n_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.model.parameters())
