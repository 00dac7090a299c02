"""Loading a Hugging Face model and tokenizer safely: local files, safetensors, no remote code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer


def load_local(auto_class: Any, path: Path, device: str | None) -> tuple[Any, Any, str]:
    """Model, tokenizer and device, so that an uploaded model cannot run code or reach the net.

    Models without a pad token (GPT-2 style) get their EOS as pad: batching needs one, and
    padded positions are masked out anyway.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = auto_class.from_pretrained(
        path, local_files_only=True, use_safetensors=True, trust_remote_code=False
    )
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    model.eval()
    return model, tokenizer, device
