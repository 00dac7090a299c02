"""A Hugging Face text classifier loaded from a local folder, queried for logits in batches."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification

from attacks.batching import in_batches, longest_first_order, pad_batch
from attacks.device import DEFAULT_BATCH_SIZE, autocast_for, batch_size_for, to_device
from attacks.report import TargetInfo
from attacks.targets.base import Target
from attacks.targets.loading import cut_for_tokenizer

_DEFAULT_LABEL_NAME = re.compile(r"LABEL_(\d+)")
_DECIMAL = re.compile(r"[0-9]+")


class TextClassifier(Target):
    """The audited model as a black box: texts in, logits out, in the caller's order."""

    auto_class = AutoModelForSequenceClassification

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

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
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        max_length: int = 128,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Logits [n, num_labels] as float32 in the order of `texts`.

        Texts are batched by tokenized length to cut padding; mixed precision is used on
        CUDA only, where it is fast and its rounding is small next to the signals' spread.
        `batch_size=None` sizes batches to the GPU's free memory (DEFAULT_BATCH_SIZE on the
        CPU). Logits stay on the device until every batch is done: one copy to the host.
        """
        if (batch_size is not None and batch_size < 1) or max_length < 1:
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
        pad_id = self.tokenizer.pad_token_id or 0
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        longest = max(len(ids) for ids in columns["input_ids"])
        size = batch_size_for(batch_size, self.device, self.model.config, longest)
        parts: list[torch.Tensor] = []
        done: list[np.ndarray] = []
        n_scored = 0

        def score(batch: np.ndarray) -> None:
            nonlocal n_scored
            ids, mask = pad_batch([columns["input_ids"][i] for i in batch], pad_id, left=left)
            inputs = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in columns:
                rows = [columns["token_type_ids"][i] for i in batch]
                inputs["token_type_ids"] = pad_batch(rows, 0, left=left)[0]
            inputs = {name: to_device(tensor, self.device) for name, tensor in inputs.items()}
            with autocast_for(self.device):
                logits = self.model(**inputs).logits
            parts.append(logits.float())
            done.append(batch)
            n_scored += len(batch)
            if progress is not None:  # from the Python count: no device sync per batch
                progress(n_scored, len(texts))

        with torch.inference_mode():
            in_batches(longest_first_order(columns["input_ids"]), size, score)
            out[np.concatenate(done)] = torch.cat(parts).cpu().numpy()
        return out
