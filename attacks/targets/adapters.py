"""A PEFT/LoRA adapter over its base model, merged into one plain model folder.

Loaded as safely as a full model (`loading.load_local`'s rules): local files only, safetensors
only, no remote code, and every adapter tensor the LoRA modules of the base need must be in
the adapter file, nothing else. The merged folder (`merge_and_unload` + `save_pretrained`, with
the adapter's tokenizer, else the base's) is then audited like any uploaded model, so scoring,
reference models and canaries need no adapter-specific path.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from attacks.targets.loading import MAX_NAMED, WeightsMismatch, check_loading_info

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "spiece.model")


def _named(names: list[str]) -> str:
    more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    return ", ".join(names[:MAX_NAMED]) + more


def load_adapted(auto_class: Any, base_dir: Path, adapter_dir: Path) -> Any:
    """The base model with the adapter merged into its weights (a plain transformers model)."""
    for pickled in sorted(adapter_dir.glob("*.bin")) + sorted(adapter_dir.glob("*.pt")):
        raise WeightsMismatch(f"{pickled.name}: adapters are loaded from safetensors only")
    if not (adapter_dir / ADAPTER_WEIGHTS).is_file():
        raise WeightsMismatch(f"the adapter has no {ADAPTER_WEIGHTS}")
    model, info = auto_class.from_pretrained(
        base_dir,
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=False,
        output_loading_info=True,
    )
    check_loading_info(info)
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors import safe_open

    try:
        adapted = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:  # size mismatch, unknown module
        raise WeightsMismatch(f"the adapter does not fit its base model: {exc}") from exc
    with safe_open(str(adapter_dir / ADAPTER_WEIGHTS), framework="pt") as f:
        stored = set(f.keys())
    expected = set(get_peft_model_state_dict(adapted).keys())
    problems = []
    if expected - stored:
        missing = sorted(expected - stored)
        problems.append(f"{len(missing)} adapter tensor(s) missing: {_named(missing)}")
    if stored - expected:
        unexpected = sorted(stored - expected)
        problems.append(f"{len(unexpected)} unexpected: {_named(unexpected)}")
    if problems:
        raise WeightsMismatch(
            "the adapter's weights are not the LoRA modules of its base model, so the model "
            "audited would not be the model trained (" + "; ".join(problems) + ")"
        )
    return adapted.merge_and_unload()


def merge_adapter(auto_class: Any, base_dir: Path, adapter_dir: Path, dest: Path) -> Path:
    """Write base + adapter, merged, to `dest` (a save_pretrained folder) and return it."""
    from transformers import AutoTokenizer

    merged = load_adapted(auto_class, base_dir, adapter_dir)
    work = dest.with_name(dest.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    merged.save_pretrained(work, safe_serialization=True)
    has_own = any((adapter_dir / name).is_file() for name in TOKENIZER_FILES)
    tokenizer = AutoTokenizer.from_pretrained(
        adapter_dir if has_own else base_dir, local_files_only=True, trust_remote_code=False
    )
    tokenizer.save_pretrained(work)
    try:
        work.rename(dest)
    except OSError:
        if not dest.exists():
            raise
        shutil.rmtree(work, ignore_errors=True)  # another worker merged it first
    return dest
