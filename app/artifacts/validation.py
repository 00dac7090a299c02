"""What makes an uploaded model folder or dataset acceptable, and what we learn from it.

Models: a `save_pretrained` folder with config.json, safetensors weights and a tokenizer,
an architecture transformers knows (no remote code), and weights that are exactly what that
architecture needs. Datasets: JSONL or CSV with text and label.

Every size that comes from the upload (config bytes and nesting, label counts, record length)
is checked here before anything is built from it. The checks that still cost memory or time
(transformers reading the config, building the architecture, safetensors headers) run in a
separate, budgeted process (`inspect_worker`), never in the API process.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from app.artifacts.errors import ArtifactRejected
from attacks.bounded_json import JsonTooDeep, loads_bounded
from attacks.data import DatasetError, read_records

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "spiece.model")
MAX_LABELS_IN_META = 1000
MAX_LABEL_CHARS = 256
MAX_CONFIG_DEPTH = 32
MAX_NAMED_TENSORS = 5
"""How many missing/unexpected/mis-shaped tensors an error names before saying "and N more"."""
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
MAX_INDEX_BYTES = 16 * 1024**2
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def read_config(folder: Path, *, max_config_bytes: int, max_labels: int) -> dict[str, Any]:
    """config.json as a dict, refused when large, deeply nested, remote code, or with more
    labels than `max_labels`: transformers expands `num_labels` into label dicts at once."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ArtifactRejected(
            "model archive has no config.json at its top level; archive the folder written by "
            "save_pretrained (tar czf model.tar.gz -C my_model .)"
        )
    size = config_path.stat().st_size
    if size > max_config_bytes:
        raise ArtifactRejected(
            f"config.json is {size} bytes, more than the limit of {max_config_bytes} bytes"
        )
    try:
        config = loads_bounded(config_path.read_bytes(), max_depth=MAX_CONFIG_DEPTH)
    except JsonTooDeep as exc:
        raise ArtifactRejected(f"config.json is {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactRejected(f"config.json is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ArtifactRejected("config.json must hold a JSON object")
    if "auto_map" in config:
        raise ArtifactRejected(
            "config.json has an auto_map (custom code); leakgate never enables "
            "trust_remote_code, so use an architecture that transformers ships"
        )
    for where, section in _sections(config, "config.json"):
        _check_labels(where, section, max_labels)
    return config


def _sections(value: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object in the config (nested configs such as text_config carry labels too)."""
    if isinstance(value, dict):
        yield where, value
        for key, item in value.items():
            yield from _sections(item, f"{where} {key}")
    elif isinstance(value, list):
        for item in value:
            yield from _sections(item, where)


def _check_labels(where: str, section: dict[str, Any], max_labels: int) -> None:
    n = section.get("num_labels")
    bad = isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= max_labels
    if n is not None and bad:
        raise ArtifactRejected(
            f"{where}: num_labels is {str(n)[:40]}; it must be an integer from 1 to {max_labels} "
            "(LEAKGATE_MAX_LABELS)"
        )
    for key in ("id2label", "label2id"):
        labels = section.get(key)
        if labels is None:
            continue
        if not isinstance(labels, dict):
            raise ArtifactRejected(f"{where}: {key} must be a JSON object")
        if len(labels) > max_labels:
            raise ArtifactRejected(
                f"{where}: {key} has {len(labels)} labels, more than the limit of {max_labels} "
                "(LEAKGATE_MAX_LABELS)"
            )
        for name, index in labels.items():
            label, number = (index, name) if key == "id2label" else (name, index)
            if len(str(label)) > MAX_LABEL_CHARS:
                raise ArtifactRejected(
                    f"{where}: {key} has a label of {len(str(label))} characters "
                    f"(at most {MAX_LABEL_CHARS})"
                )
            if not _small_index(number, max_labels):
                raise ArtifactRejected(
                    f"{where}: {key} maps to class index {str(number)[:40]!r}; indices must "
                    f"be integers from 0 to {max_labels - 1}"
                )


def _small_index(value: Any, max_labels: int) -> bool:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < max_labels


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files transformers will load: model.safetensors, or the index's shards.

    Any other *.safetensors file would be ignored at load, so the model audited would not be
    the one described; it is refused.
    """
    index_path = folder / WEIGHTS_INDEX
    if index_path.is_file():
        if index_path.stat().st_size > MAX_INDEX_BYTES:
            raise ArtifactRejected(
                f"{WEIGHTS_INDEX} is larger than {MAX_INDEX_BYTES} bytes; a real index is a few "
                "hundred kilobytes"
            )
        try:
            index = loads_bounded(index_path.read_bytes(), max_depth=8)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArtifactRejected(f"{WEIGHTS_INDEX} is not valid JSON: {exc}") from exc
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise ArtifactRejected(f"{WEIGHTS_INDEX} needs a weight_map of tensor -> file")
        names = sorted(set(weight_map.values()))
        files = []
        for name in names:
            path = folder / name
            if "/" in name or not name.endswith(".safetensors") or not path.is_file():
                raise ArtifactRejected(
                    f"{WEIGHTS_INDEX} names {name!r}, which is not in the archive"
                )
            files.append(path)
    elif (folder / WEIGHTS_FILE).is_file():
        files = [folder / WEIGHTS_FILE]
    else:
        raise ArtifactRejected(
            "model archive has no model.safetensors (or model.safetensors.index.json); save "
            "with save_pretrained(folder, safe_serialization=True)"
        )
    stray = sorted(p.name for p in folder.glob("*.safetensors") if p not in files)
    if stray:
        raise ArtifactRejected(
            f"{', '.join(stray[:MAX_NAMED_TENSORS])} would not be loaded (only {WEIGHTS_FILE} "
            f"or the shards named by {WEIGHTS_INDEX} are); remove it or save the model again"
        )
    return files


def read_tensor_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors headers only (no tensor data is read)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for weight in files:
        try:
            with safe_open(str(weight), framework="numpy") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    if key in shapes:
                        raise ArtifactRejected(f"tensor {key!r} is stored twice ({weight.name})")
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        except ArtifactRejected:
            raise
        except Exception as exc:  # safetensors raises its own error types
            raise ArtifactRejected(f"{weight.name} is not a valid safetensors file: {exc}") from exc
    return shapes


def inspect_model_folder(
    folder: Path, *, max_config_bytes: int = 4 * 1024**2, max_labels: int = 10_000
) -> dict[str, Any]:
    """Check the unpacked folder fully and return metadata used to validate audit specs early.

    Expensive (imports transformers, builds the architecture on the meta device): call it
    through `inspect_model_folder_budgeted` from the API.
    """
    read_config(folder, max_config_bytes=max_config_bytes, max_labels=max_labels)
    files = weight_files(folder)
    shapes = read_tensor_shapes(files)
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
    from app.artifacts.architecture import check_weights_match

    check_weights_match(hf_config, shapes)
    id2label = {int(k): str(v) for k, v in (hf_config.id2label or {}).items()}
    return {
        "model_type": hf_config.model_type,
        "architectures": list(hf_config.architectures or []),
        "num_labels": hf_config.num_labels,
        "labels": [id2label[i] for i in sorted(id2label)],
        "n_parameters": sum(math.prod(shape) for shape in shapes.values()),
        "weights": [w.name for w in files],
    }


def inspect_model_folder_budgeted(
    folder: Path,
    *,
    max_config_bytes: int,
    max_labels: int,
    memory_bytes: int,
    timeout_s: float,
) -> dict[str, Any]:
    """`inspect_model_folder` in a child process with a data-memory limit and a timeout,
    so a hostile config can exhaust only that child, never the API.

    The cheap checks run here first, so the common refusals cost no process start.
    """
    read_config(folder, max_config_bytes=max_config_bytes, max_labels=max_labels)
    weight_files(folder)
    with tempfile.TemporaryDirectory(prefix="leakgate-inspect-") as scratch:
        result_path = Path(scratch) / "result.json"
        command = [
            sys.executable,
            "-m",
            "app.artifacts.inspect_worker",
            str(folder),
            str(result_path),
            str(max_config_bytes),
            str(max_labels),
            str(memory_bytes),
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(_PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        try:
            done = subprocess.run(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ArtifactRejected(
                f"checking the model took longer than {timeout_s:g} s "
                "(LEAKGATE_INSPECT_TIMEOUT_S); is config.json describing a far larger model "
                "than the weights?"
            ) from exc
        if result_path.is_file():
            result = json.loads(result_path.read_text(encoding="utf-8"))
            if "rejected" in result:
                raise ArtifactRejected(result["rejected"])
            return result["meta"]
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise ArtifactRejected(
            f"checking the model needed more than {memory_bytes} bytes of memory "
            f"(LEAKGATE_INSPECT_MEMORY_BYTES) or failed (exit {done.returncode}: {tail[0][:300]})"
        )


def inspect_dataset(
    path: Path,
    filename: str,
    *,
    max_records: int,
    max_record_chars: int | None = None,
    max_labels: int | None = None,
) -> dict[str, Any]:
    """Parse the whole dataset once so that a bad line is reported now, not in the worker."""
    fmt = dataset_format(filename)
    try:
        records = read_records(
            path,
            fmt,
            max_records=max_records,
            require_label=False,
            max_text_chars=max_record_chars,
        )
    except DatasetError as exc:
        raise ArtifactRejected(f"dataset {filename}: {exc}") from exc
    labels = sorted({str(r.label) for r in records if r.label is not None})
    if max_labels is not None and len(labels) > max_labels:
        raise ArtifactRejected(
            f"dataset {filename}: {len(labels)} distinct labels, more than the limit of "
            f"{max_labels} (LEAKGATE_MAX_LABELS)"
        )
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
