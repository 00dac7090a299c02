"""A Hugging Face text classifier loaded from a local folder, queried for logits in batches."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification

from attacks.report import TargetInfo
from attacks.targets.loading import cut_for_tokenizer, load_local

_DEFAULT_LABEL_NAME = re.compile(r"LABEL_(\d+)")
_DECIMAL = re.compile(r"[0-9]+")


class TextClassifier:
    """The audited model as a black box: texts in, logits out, in the caller's order."""

    def __init__(self, model: Any, tokenizer: Any, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device

    @classmethod
    def load(cls, path: Path, device: str | None = None) -> TextClassifier:
        """Load weights and tokenizer from a local folder only: safetensors, no remote code,
        so an uploaded model cannot run code or reach the network."""
        return cls(*load_local(AutoModelForSequenceClassification, path, device))

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    @property
    def n_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.model.parameters())

    def target_info(self) -> TargetInfo:
        """What the report says about the audited model."""
        return TargetInfo(
            task="text-classification",
            model_type=getattr(self.model.config, "model_type", None),
            num_labels=self.num_labels,
            n_parameters=self.n_parameters,
        )

    def label_ids(self, labels: Sequence[str | int | None]) -> np.ndarray:
        """Class indices for dataset labels: names via the model's label2id, or indices.

        A decimal string such as "2" is taken as an index only when the model has the
        default LABEL_i names, i.e. when its config names no classes.
        """
        label2id = {str(name): int(index) for name, index in self.model.config.label2id.items()}
        default_names = all(_DEFAULT_LABEL_NAME.fullmatch(name) for name in label2id)
        ids = np.empty(len(labels), dtype=np.int64)
        for position, label in enumerate(labels):
            index = self._label_id(label, label2id, default_names)
            if index is None:
                raise ValueError(
                    f"unknown label {label!r} (the model knows: {self._known_labels(label2id)})"
                )
            ids[position] = index
        return ids

    def _label_id(self, label: Any, label2id: dict[str, int], default_names: bool) -> int | None:
        if isinstance(label, bool):
            return None
        if isinstance(label, int | np.integer):
            return int(label) if 0 <= label < self.num_labels else None
        if isinstance(label, str):
            if label in label2id:
                return label2id[label]
            if default_names and _DECIMAL.fullmatch(label) and int(label) < self.num_labels:
                return int(label)
        return None

    def _known_labels(self, label2id: dict[str, int]) -> str:
        names = sorted(label2id, key=label2id.__getitem__)
        return ", ".join(f"{name!r} ({label2id[name]})" for name in names)

    def logits(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        max_length: int = 128,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Logits [n, num_labels] as float32 in the order of `texts`.

        Texts are batched by tokenized length to cut padding; mixed precision is used on
        CUDA only, where it is fast and its rounding is small next to the signals' spread.
        """
        if batch_size < 1 or max_length < 1:
            raise ValueError("batch_size and max_length must be positive")
        texts = list(texts)
        if any(not isinstance(text, str) for text in texts):
            raise TypeError("texts must be strings")
        out = np.empty((len(texts), self.num_labels), dtype=np.float32)
        if not texts:
            return out
        # Tokenize once; each batch is then padded from these ids (no second tokenizer pass).
        encoded = self.tokenizer(
            cut_for_tokenizer(texts, max_length), truncation=True, max_length=max_length
        )
        columns = {f: encoded[f] for f in ("input_ids", "token_type_ids") if f in encoded}
        lengths = np.fromiter((len(ids) for ids in columns["input_ids"]), dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")  # longest first: an OOM shows at once
        pad_values = {"input_ids": self.tokenizer.pad_token_id or 0, "token_type_ids": 0}
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(texts), batch_size):
                batch = order[start : start + batch_size]
                batch_lengths = lengths[batch]
                width = int(batch_lengths.max())
                positions = np.arange(width)
                if left:
                    mask = positions >= (width - batch_lengths)[:, None]
                else:
                    mask = positions < batch_lengths[:, None]
                inputs = {"attention_mask": torch.from_numpy(mask.astype(np.int64))}
                for name, rows in columns.items():
                    padded = np.full((len(batch), width), pad_values[name], dtype=np.int64)
                    padded[mask] = np.concatenate([rows[i] for i in batch])
                    inputs[name] = torch.from_numpy(padded)
                inputs = {name: tensor.to(self.device) for name, tensor in inputs.items()}
                out[batch] = self.model(**inputs).logits.float().cpu().numpy()
                if progress is not None:
                    progress(min(start + batch_size, len(texts)), len(texts))
        return out

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if torch.device(self.device).type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
