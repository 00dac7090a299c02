"""Do the uploaded weights fit the architecture config.json describes, tensor for tensor?

transformers fills any weight a checkpoint lacks with random values and drops any it does not
know, with a log line nobody reads: an archive with a real config and one stray tensor would be
audited as a randomly initialised model. Here the architecture is built on the `meta` device
(shapes only, no memory for values) and its state dict is compared with the safetensors headers.
"""

from __future__ import annotations

import re
from typing import Any

from app.artifacts.errors import ArtifactRejected

MAX_NAMED = 5
Shapes = dict[str, tuple[int, ...]]


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def model_classes(hf_config: Any) -> list[Any]:
    """The classes transformers would build: the config's architectures, else the usual heads."""
    import transformers

    names = list(getattr(hf_config, "architectures", None) or [])
    if names:
        classes = []
        for name in names:
            cls = getattr(transformers, str(name), None)
            if not isinstance(cls, type) or not issubclass(cls, transformers.PreTrainedModel):
                raise ArtifactRejected(
                    f"config.json names architecture {str(name)[:100]!r}, which transformers "
                    "does not ship; leakgate never runs remote code"
                )
            classes.append(cls)
        return classes
    return [
        transformers.AutoModelForSequenceClassification,
        transformers.AutoModelForCausalLM,
        transformers.AutoModel,
    ]


def expected_tensors(model_class: Any, hf_config: Any) -> tuple[Shapes, list[set[str]], Any]:
    """State dict shapes of the architecture, the groups of tied names, and the model."""
    import torch

    with torch.device("meta"):
        if hasattr(model_class, "from_config"):
            model = model_class.from_config(hf_config)
        else:
            model = model_class(hf_config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    groups: dict[int, set[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), set()).add(name)
    tied = [names for names in groups.values() if len(names) > 1]
    return shapes, tied, model


def mismatches(
    model_class: Any, hf_config: Any, stored: Shapes
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) tensor descriptions; all empty when the weights fit."""
    shapes, tied, model = expected_tensors(model_class, hf_config)
    prefix = getattr(model, "base_model_prefix", "") or ""
    original = {name: name for name in stored}
    if prefix and not any(name.startswith(prefix + ".") for name in stored):
        # A checkpoint saved from the base model: transformers adds the prefix when loading.
        heads = _heads(shapes, prefix)
        renamed = {
            (name if name.split(".")[0] in heads else f"{prefix}.{name}"): name for name in stored
        }
        if len(shapes.keys() & renamed.keys()) > len(shapes.keys() & stored.keys()):
            original = renamed
            stored = {new: stored[old] for new, old in renamed.items()}
    ignore_missing = [
        re.compile(p) for p in getattr(model, "_keys_to_ignore_on_load_missing", None) or []
    ]
    ignore_unexpected = [
        re.compile(p) for p in getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []
    ]
    tied_with: dict[str, set[str]] = {name: group for group in tied for name in group}
    missing = sorted(
        name
        for name in shapes
        if name not in stored
        and not any(other in stored for other in tied_with.get(name, ()))
        and not any(p.search(name) for p in ignore_missing)
    )
    unexpected = sorted(
        original[name]
        for name in stored
        if name not in shapes and not any(p.search(name) for p in ignore_unexpected)
    )
    misshaped = sorted(
        f"{name} {list(stored[name])} (needs {list(shape)})"
        for name, shape in shapes.items()
        if name in stored and tuple(stored[name]) != shape
    )
    return missing, unexpected, misshaped


def _heads(shapes: Shapes, prefix: str) -> set[str]:
    return {name.split(".")[0] for name in shapes if not name.startswith(prefix + ".")}


def check_weights_match(hf_config: Any, stored: Shapes) -> None:
    """Refuse weights that are not exactly what the config's architecture needs."""
    problems: list[str] = []
    build_errors: list[str] = []
    for model_class in model_classes(hf_config):
        name = getattr(model_class, "__name__", str(model_class))
        try:
            missing, unexpected, misshaped = mismatches(model_class, hf_config, stored)
        except (MemoryError, SystemError) as exc:  # C code out of memory may say either
            raise MemoryError(str(exc)) from exc
        except Exception as exc:  # the config's values do not build this class
            build_errors.append(f"config.json does not build a {name}: {str(exc)[:300]}")
            continue
        if not (missing or unexpected or misshaped):
            return
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s): {_named(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s): {_named(unexpected)}")
        if misshaped:
            parts.append(f"{len(misshaped)} with the wrong shape: {_named(misshaped)}")
        problems.append(f"{name}: " + "; ".join(parts))
    if not problems:
        raise ArtifactRejected(build_errors[0])
    raise ArtifactRejected(
        "the safetensors weights do not match the architecture config.json describes, so the "
        "model audited would not be the model trained ("
        + " | ".join(problems[:1])
        + "); save model and config together with save_pretrained"
    )
