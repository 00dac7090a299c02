"""Where a secret canary's characters sit in the token ids, without torch.

The worker measures canaries with the model's own tokenizer; the API checks, at submission,
that the same tokenizer gives every alphabet character a token of its own (otherwise exposure
cannot be measured and the audit would fail at the canary stage, after all the scoring). Both
go through `secret_slots` and `canary_ids`, so the check and the measurement cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attacks.canaries.generation import Template

Encode = Callable[[str], tuple[Sequence[int], Sequence[tuple[int, int]]]]
"""text -> (token ids, character offsets per token), special tokens included."""


class CanaryTokenError(ValueError):
    """The tokenizer cannot represent the canaries' secrets token by token."""


@dataclass(frozen=True)
class SecretSlots:
    """The template's token ids with its secret filled with the alphabet's first character,
    the positions of the secret's tokens, and `table[position, character]`: the id each
    alphabet character takes at each position."""

    ids: np.ndarray
    positions: np.ndarray
    table: np.ndarray


def secret_slots(encode: Encode, template: Template, unknown_id: int | None) -> SecretSlots:
    """Check every alphabet character is a distinct, known token at every secret position.

    The alphabet's ids are read off the template filled with one character throughout, so a
    tokenizer that writes " 4" and "4" differently is handled per position.
    """
    alphabet = template.alphabet
    reference = [ids_and_positions(encode, template, c * template.n_slots) for c in alphabet]
    ids0, positions = reference[0]
    for char, (ids, where) in zip(alphabet, reference, strict=True):
        if len(ids) != len(ids0) or not np.array_equal(where, positions):
            raise CanaryTokenError(
                f"the tokenizer does not give secret character {char!r} a token of its own"
            )
    table = np.stack([ids[positions] for ids, _ in reference], axis=1)  # [n_slots, |alphabet|]
    for slot in range(len(positions)):
        if len(set(table[slot].tolist())) != len(alphabet) or unknown_id in table[slot]:
            raise CanaryTokenError(
                "the tokenizer maps some secret characters to the same or an unknown token; "
                f"its vocabulary must hold every character of {alphabet!r}"
            )
    return SecretSlots(ids0, positions, table)


def canary_ids(
    encode: Encode, template: Template, slots: SecretSlots, canary_id: str, secret: str | None
) -> np.ndarray:
    """Token ids of one canary, which must tokenise exactly like its template."""
    if secret is None:
        raise CanaryTokenError(f"canary {canary_id} has no secret")
    ids, where = ids_and_positions(encode, template, secret)
    if len(ids) != len(slots.ids) or not np.array_equal(where, slots.positions):
        raise CanaryTokenError(f"canary {canary_id} does not tokenise like its template")
    return ids


def ids_and_positions(
    encode: Encode, template: Template, secret: str
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of the template with `secret` filled in, and the token of each secret char."""
    text, spans = template.render_with_spans(secret)
    raw_ids, offsets = encode(text)
    ids = np.asarray(raw_ids, dtype=np.int64)
    positions = []
    for start, end in spans:
        hits = [
            t for t, (a, b) in enumerate(offsets) if b == end and text[a:b].strip() == text[start]
        ]
        if len(hits) != 1:
            raise CanaryTokenError(
                f"the tokenizer does not give secret character {text[start]!r} a token of its own"
            )
        positions.append(hits[0])
    return ids, np.asarray(positions, dtype=np.int64)


def hf_encode(tokenizer: Any) -> Encode:
    """`Encode` for a transformers tokenizer (what the worker loads)."""

    def encode(text: str) -> tuple[Sequence[int], Sequence[tuple[int, int]]]:
        encoded = tokenizer(text, return_offsets_mapping=True)
        return encoded["input_ids"], encoded["offset_mapping"]

    return encode
