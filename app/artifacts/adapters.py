"""PEFT/LoRA adapters as model artifacts: checked at upload alone, and against their base model
when an audit names both.

An adapter folder (`adapter_config.json` + `adapter_model.safetensors`, what
`PeftModel.save_pretrained` writes) is not a model by itself: the worker loads the base model
artifact the audit names and the adapter over it with peft. At upload only the adapter's own
files can be checked (bounded config, LoRA only, safetensors only, tensors named like LoRA);
at submission, the safetensors headers of both say whether every target module exists in the
base with a shape the adapter's matrices fit. Nothing here imports torch or peft.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from app.artifacts.errors import ArtifactRejected
from app.artifacts.validation import TOKENIZER_FILES, read_tensor_shapes, weight_files
from attacks.bounded_json import JsonTooDeep, loads_bounded

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SUPPORTED_PEFT_TYPES = ("LORA",)
TASK_TYPES = {"SEQ_CLS": "text-classification", "CAUSAL_LM": "causal-lm"}
MAX_RANK = 4096
MAX_TARGET_MODULES = 1000
MAX_PATTERN_CHARS = 1000
MAX_NAMED = 5
# Tensor names PEFT writes for a LoRA adapter: <module>.lora_A/B(.weight), the embedding
# variants, DoRA's magnitude vector, and full copies of `modules_to_save`.
_LORA_TENSOR = re.compile(
    r"^(?P<module>.+)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B|"
    r"lora_magnitude_vector)(\.weight)?$"
)
_PEFT_PREFIX = "base_model.model."


def is_adapter_folder(folder: Path) -> bool:
    """An adapter (not a full model): adapter_config.json and no model weights of its own."""
    return (folder / ADAPTER_CONFIG).is_file() and not any(
        (folder / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")
    )


def read_adapter_config(folder: Path, *, max_config_bytes: int) -> dict[str, Any]:
    """adapter_config.json as a dict: bounded, a LoRA adapter, sane rank and target modules."""
    path = folder / ADAPTER_CONFIG
    size = path.stat().st_size
    if size > max_config_bytes:
        raise ArtifactRejected(
            f"{ADAPTER_CONFIG} is {size} bytes, more than the limit of {max_config_bytes} bytes"
        )
    try:
        config = loads_bounded(path.read_bytes(), max_depth=8)
    except JsonTooDeep as exc:
        raise ArtifactRejected(f"{ADAPTER_CONFIG} is {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactRejected(f"{ADAPTER_CONFIG} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ArtifactRejected(f"{ADAPTER_CONFIG} must hold a JSON object")
    peft_type = config.get("peft_type")
    if peft_type not in SUPPORTED_PEFT_TYPES:
        raise ArtifactRejected(
            f"{ADAPTER_CONFIG}: peft_type {str(peft_type)[:40]!r} is not supported; leakgate "
            f"audits {', '.join(SUPPORTED_PEFT_TYPES)} adapters (or merge the adapter into the "
            "base with merge_and_unload() and upload the merged model)"
        )
    if config.get("auto_mapping"):
        raise ArtifactRejected(
            f"{ADAPTER_CONFIG} has an auto_mapping (custom code); leakgate never runs remote code"
        )
    rank = config.get("r")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= MAX_RANK:
        raise ArtifactRejected(
            f"{ADAPTER_CONFIG}: r is {str(rank)[:40]}; the LoRA rank must be an integer from 1 "
            f"to {MAX_RANK}"
        )
    targets = config.get("target_modules")
    if isinstance(targets, str):
        if len(targets) > MAX_PATTERN_CHARS:
            raise ArtifactRejected(f"{ADAPTER_CONFIG}: target_modules pattern is too long")
        try:
            re.compile(targets)
        except re.error as exc:
            raise ArtifactRejected(
                f"{ADAPTER_CONFIG}: target_modules is not a valid pattern: {exc}"
            ) from exc
    elif isinstance(targets, list):
        if not targets or len(targets) > MAX_TARGET_MODULES:
            raise ArtifactRejected(
                f"{ADAPTER_CONFIG}: target_modules needs 1 to {MAX_TARGET_MODULES} module names"
            )
        if not all(isinstance(t, str) and 0 < len(t) <= 200 for t in targets):
            raise ArtifactRejected(f"{ADAPTER_CONFIG}: target_modules must be module names")
    else:
        raise ArtifactRejected(
            f"{ADAPTER_CONFIG}: target_modules must be a list of module names or a pattern"
        )
    saved = config.get("modules_to_save")
    if saved is not None and not (
        isinstance(saved, list) and all(isinstance(m, str) and m for m in saved)
    ):
        raise ArtifactRejected(f"{ADAPTER_CONFIG}: modules_to_save must be a list of names")
    return config


def inspect_adapter_folder(folder: Path, *, max_config_bytes: int) -> dict[str, Any]:
    """Metadata of an uploaded adapter; the fit with its base is checked at submission."""
    config = read_adapter_config(folder, max_config_bytes=max_config_bytes)
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise ArtifactRejected(
            f"adapter archive has no {ADAPTER_WEIGHTS}; save the adapter with "
            "model.save_pretrained(folder) (peft writes safetensors by default)"
        )
    stray = sorted(p.name for p in folder.glob("*.safetensors") if p != weights)
    if stray:
        raise ArtifactRejected(
            f"{', '.join(stray[:MAX_NAMED])} would not be loaded with the adapter (only "
            f"{ADAPTER_WEIGHTS} is); remove it"
        )
    shapes = read_tensor_shapes([weights])
    modules = adapter_modules(shapes, config)
    if not modules:
        raise ArtifactRejected(f"{ADAPTER_WEIGHTS} holds no LoRA tensors (lora_A / lora_B)")
    task_type = config.get("task_type")
    return {
        "adapter": True,
        "peft_type": config["peft_type"],
        "task_type": task_type if isinstance(task_type, str) else None,
        "task": TASK_TYPES.get(str(task_type)),
        "r": config["r"],
        "target_modules": config["target_modules"],
        "n_adapted_modules": len(modules),
        "n_parameters": sum(math.prod(shape) for shape in shapes.values()),
        "weights": [ADAPTER_WEIGHTS],
        "has_tokenizer": any((folder / name).is_file() for name in TOKENIZER_FILES),
    }


def adapter_modules(
    shapes: dict[str, tuple[int, ...]], config: dict[str, Any]
) -> dict[str, dict[str, tuple[int, ...]]]:
    """Adapted module path (as in the base model) -> its LoRA tensors' shapes by part.

    Every tensor must be a LoRA part or belong to `modules_to_save`; anything else is refused.
    """
    saved = [str(m) for m in config.get("modules_to_save") or []]
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    unknown = []
    for name, shape in shapes.items():
        match = _LORA_TENSOR.match(name)
        if match:
            module = match["module"].removeprefix(_PEFT_PREFIX)
            modules.setdefault(module, {})[match["part"]] = shape
        elif not any(f".{m}." in f".{name}" for m in saved):
            unknown.append(name)
    if unknown:
        raise ArtifactRejected(
            f"{ADAPTER_WEIGHTS} holds tensors that are neither LoRA weights nor modules_to_save: "
            + ", ".join(sorted(unknown)[:MAX_NAMED])
        )
    return modules


def check_adapter_fits(adapter_dir: Path, base_dir: Path) -> None:
    """Refuse an adapter whose target modules are not in the base, or whose LoRA matrices do
    not fit the base module's weight (the safetensors headers of both, no tensor data)."""
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    modules = adapter_modules(read_tensor_shapes([adapter_dir / ADAPTER_WEIGHTS]), config)
    base = read_tensor_shapes(weight_files(base_dir))
    base_modules = {name.rsplit(".", 1)[0] for name in base if name.endswith(".weight")}
    missing, misfit = _absent_targets(config.get("target_modules"), base_modules), []
    for module, parts in sorted(modules.items()):
        found = _base_module(module, base_modules)
        if found is None:
            missing.append(module)
            continue
        weight = base[f"{found}.weight"]
        a = parts.get("lora_A") or parts.get("lora_embedding_A")
        b = parts.get("lora_B") or parts.get("lora_embedding_B")
        if a is None or b is None or len(weight) != 2:
            misfit.append(f"{module} (LoRA parts {sorted(parts)} over a weight {list(weight)})")
            continue
        # Linear [out, in]: A [r, in], B [out, r]; GPT-2's Conv1D stores [in, out]; an
        # embedding [vocab, dim]: A [r, vocab], B [dim, r].
        if sorted((a[-1], b[0])) != sorted(weight) or a[0] != b[-1]:
            misfit.append(f"{module}: A {list(a)}, B {list(b)} over a weight {list(weight)}")
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} adapted module(s) not in the base model: "
            + ", ".join(missing[:MAX_NAMED])
        )
    if misfit:
        problems.append(
            f"{len(misfit)} whose shapes do not fit the base: " + "; ".join(misfit[:MAX_NAMED])
        )
    if problems:
        raise ArtifactRejected(
            "the adapter was not trained on this base model (" + "; ".join(problems) + ")"
        )


def _absent_targets(targets: Any, base_modules: set[str]) -> list[str]:
    """adapter_config.json's target_modules that match no module of the base (peft refuses to
    load such an adapter): a name matches a module it ends with, a pattern must match whole."""
    if isinstance(targets, str):
        pattern = re.compile(targets)
        return [] if any(pattern.fullmatch(m) for m in base_modules) else [targets]
    return [
        str(t)
        for t in targets or []
        if not any(m == t or m.endswith("." + str(t)) for m in base_modules)
    ]


def _base_module(module: str, base_modules: set[str]) -> str | None:
    """The base's name for an adapted module: the same, or with/without the model prefix
    (a base saved from the headless model lacks e.g. `bert.`)."""
    if module in base_modules:
        return module
    for name in base_modules:
        if name.endswith("." + module) or module.endswith("." + name):
            return name
    return None
