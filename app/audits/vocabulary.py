"""The stored model's tokenizer, read in the API without torch, for checks at submission.

Only `tokenizer.json` (a fast tokenizer, what `save_pretrained` writes for nearly every model)
is read, with the `tokenizers` package the worker's transformers uses underneath; a model with
only a slow tokenizer (vocab.txt, sentencepiece) is left to the worker's own check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attacks.canaries.tokens import Encode

TOKENIZER_JSON = "tokenizer.json"
MAX_TOKENIZER_BYTES = 64 * 1024**2
"""A larger tokenizer.json is not parsed in the API (the largest real ones are ~35 MB)."""
MAX_TOKENIZER_CONFIG_BYTES = 1024**2


def load_encoder(folder: Path) -> tuple[Encode, int | None] | None:
    """(encode, unknown token id) of the folder's fast tokenizer, or None when there is none
    the API can read; then the worker checks with transformers, as before."""
    path = folder / TOKENIZER_JSON
    try:
        if not path.is_file() or path.stat().st_size > MAX_TOKENIZER_BYTES:
            return None
        from tokenizers import Tokenizer  # no torch: the Rust tokenizer transformers wraps

        tokenizer = Tokenizer.from_file(str(path))
    except Exception:  # unreadable here; the worker's load will say why
        return None
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def encode(text: str) -> tuple[Sequence[int], Sequence[tuple[int, int]]]:
        encoding = tokenizer.encode(text)
        return encoding.ids, encoding.offsets

    return encode, _unknown_id(folder, tokenizer)


def _unknown_id(folder: Path, tokenizer: Any) -> int | None:
    """The unknown token's id as transformers sees it: tokenizer_config.json's unk_token,
    else the tokenizer model's own."""
    unk = _configured_unk(folder / "tokenizer_config.json")
    if unk is None:
        unk = getattr(tokenizer.model, "unk_token", None)
    if not isinstance(unk, str):
        return None
    found = tokenizer.token_to_id(unk)
    return int(found) if found is not None else None


def _configured_unk(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_TOKENIZER_CONFIG_BYTES:
            return None
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    unk = config.get("unk_token") if isinstance(config, dict) else None
    if isinstance(unk, dict):
        unk = unk.get("content")
    return unk if isinstance(unk, str) else None
