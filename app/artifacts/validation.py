"""What makes an uploaded model folder or dataset acceptable, and what we learn from it.

Models: a `save_pretrained` folder with config.json, safetensors weights and a tokenizer,
an architecture transformers knows (no remote code). Datasets: JSONL or CSV with text and label.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from safetensors import safe_open

from app.artifacts.errors import ArtifactRejected
from attacks.data import DatasetError, read_records

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "spiece.model")
MAX_LABELS_IN_META = 1000


def inspect_model_folder(folder: Path) -> dict[str, Any]:
    """Check the unpacked folder and return metadata used to validate audit specs early."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ArtifactRejected(
            "model archive has no config.json at its top level; archive the folder written by "
            "save_pretrained (tar czf model.tar.gz -C my_model .)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactRejected(f"config.json is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ArtifactRejected("config.json must hold a JSON object")
    if "auto_map" in config:
        raise ArtifactRejected(
            "config.json has an auto_map (custom code); leakgate never enables "
            "trust_remote_code, so use an architecture that transformers ships"
        )
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ArtifactRejected(
            "model archive has no *.safetensors weights; save with "
            "save_pretrained(folder, safe_serialization=True)"
        )
    n_parameters = 0
    for weight in weights:
        try:
            with safe_open(str(weight), framework="numpy") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    n_parameters += math.prod(f.get_slice(key).get_shape())
        except Exception as exc:  # safetensors raises its own error types
            raise ArtifactRejected(f"{weight.name} is not a valid safetensors file: {exc}") from exc
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ArtifactRejected(
            "model archive has no tokenizer (tokenizer.json or vocab.txt); save the tokenizer "
            "into the same folder with tokenizer.save_pretrained(folder)"
        )
    from transformers import AutoConfig  # heavy import, only when a model arrives

    try:
        hf_config = AutoConfig.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
    except Exception as exc:
        raise ArtifactRejected(
            f"config.json is not a configuration transformers knows: {exc}"
        ) from exc
    id2label = {int(k): str(v) for k, v in (hf_config.id2label or {}).items()}
    return {
        "model_type": hf_config.model_type,
        "architectures": list(hf_config.architectures or []),
        "num_labels": hf_config.num_labels,
        "labels": [id2label[i] for i in sorted(id2label)],
        "n_parameters": n_parameters,
        "weights": [w.name for w in weights],
    }


def inspect_dataset(path: Path, filename: str, *, max_records: int) -> dict[str, Any]:
    """Parse the whole dataset once so that a bad line is reported now, not in the worker."""
    fmt = dataset_format(filename)
    try:
        records = read_records(path, fmt, max_records=max_records, require_label=False)
    except DatasetError as exc:
        raise ArtifactRejected(f"dataset {filename}: {exc}") from exc
    labels = sorted({str(r.label) for r in records if r.label is not None})
    missing_labels = sum(r.label is None for r in records)
    return {
        "format": fmt,
        "n_records": len(records),
        "labels": labels[:MAX_LABELS_IN_META],
        "n_labels": len(labels),
        "missing_labels": missing_labels,
        "has_text": all(r.text for r in records),
        "outputs_kind": records[0].outputs_kind,
        "n_outputs": len(records[0].outputs or ()),
    }


def dataset_format(filename: str) -> Literal["jsonl", "csv"]:
    lower = filename.lower()
    if lower.endswith(".jsonl"):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    raise ArtifactRejected(
        f"dataset {filename!r} must be JSONL (.jsonl) or CSV (.csv) with 'text' and 'label'"
    )
