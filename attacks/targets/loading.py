"""Loading a Hugging Face model and tokenizer safely: local files, safetensors, no remote code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

MAX_NAMED = 5
CHARS_PER_TOKEN_BOUND = 64
"""No token of a real vocabulary spans more characters than this (GPT-2's longest are ~40),
so the first `max_length * 64` characters always hold the first `max_length` tokens."""


def cut_for_tokenizer(texts: list[str], max_length: int) -> list[str]:
    """Each text cut to the characters that can yield its first `max_length` tokens.

    A fast tokenizer normalises and pre-tokenises the whole text before it truncates, with
    several objects per character: a 50 MB record grew a worker by gigabytes. Cutting first
    keeps tokenisation proportional to `max_length`, whatever the record's length.
    """
    limit = max_length * CHARS_PER_TOKEN_BOUND
    return [text if len(text) <= limit else text[:limit] for text in texts]


class WeightsMismatch(ValueError):
    """The checkpoint is not the model its config describes; loading it would audit random
    weights (transformers initialises what is missing and drops what it does not know)."""


def check_loading_info(info: dict[str, Any]) -> None:
    """Raise WeightsMismatch naming the missing, unexpected or mis-shaped tensors, if any."""
    problems = []
    for key, what in (
        ("missing_keys", "missing"),
        ("unexpected_keys", "unexpected"),
        ("mismatched_keys", "with the wrong shape"),
    ):
        names = sorted(
            str(item[0] if isinstance(item, tuple) else item) for item in info.get(key) or ()
        )
        if names:
            shown = ", ".join(names[:MAX_NAMED])
            more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
            problems.append(f"{len(names)} tensor(s) {what}: {shown}{more}")
    if problems:
        raise WeightsMismatch(
            "the model's weights do not match its config.json, so the model audited would not "
            "be the model trained (" + "; ".join(problems) + ")"
        )


def load_local(
    auto_class: Any, path: Path, device: str | None, tokenizer_dir: Path | None = None
) -> tuple[Any, Any, str]:
    """Model, tokenizer and device, so that an uploaded model cannot run code or reach the net.

    The tokenizer comes from `tokenizer_dir` when given (a base model under an adapter that
    ships its own tokenizer), else from `path`.

    Every weight the architecture needs must be in the checkpoint with its shape, and nothing
    else (WeightsMismatch otherwise). Models without a pad token (GPT-2 style) get their EOS
    as pad: batching needs one, and padded positions are masked out anyway.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model, info = auto_class.from_pretrained(
            path,
            local_files_only=True,
            use_safetensors=True,
            trust_remote_code=False,
            output_loading_info=True,
        )
    except RuntimeError as exc:  # e.g. a size mismatch between checkpoint and config
        raise WeightsMismatch(
            f"the weights in {path.name} do not fit its config.json: {exc}"
        ) from exc
    check_loading_info(info)
    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer_dir or path, local_files_only=True, trust_remote_code=False
    )
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    model.eval()
    return model, tokenizer, device
