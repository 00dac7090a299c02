"""The audited model as canary attacks need it: token ids in, log-likelihoods out, batched.

Candidates differ from the canary only at the secret's tokens, so they are built by writing
alphabet token ids into the canary's ids (no re-tokenising), and thousands are scored per
forward pass. The same view gives the inversion its embedding matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch

from attacks.batching import in_batches
from attacks.canaries.generation import Canary, Template
from attacks.canaries.tokens import canary_ids, hf_encode, secret_slots
from attacks.device import autocast_for, to_device

ModelKind = Literal["text-classification", "token-classification", "causal-lm"]

IGNORED = -100
"""Tag id of tokens a token classifier's loss skips (special tokens), as in transformers."""


@dataclass(frozen=True)
class CanaryTokens:
    """One canary tokenised: its ids, where the secret's tokens sit, and which id each
    alphabet character takes at each of those positions (`table[position, character]`).
    `label` is a class index (sequence classifiers) or one tag id per token (token
    classifiers, IGNORED where the loss skips a token)."""

    ids: np.ndarray
    positions: np.ndarray
    table: np.ndarray
    secret: np.ndarray
    label: int | np.ndarray | None

    def labels_for(self, n: int) -> np.ndarray | None:
        """The label repeated for n candidates: [n] class ids or [n, length] tag ids."""
        if self.label is None:
            return None
        if isinstance(self.label, np.ndarray):
            return np.repeat(self.label[None, :], n, axis=0)
        return np.full(n, self.label, dtype=np.int64)

    def with_secrets(self, secrets: np.ndarray) -> np.ndarray:
        """Token ids [n, length] of the canary with each row of `secrets` (alphabet indices)."""
        ids = np.repeat(self.ids[None, :], len(secrets), axis=0)
        ids[:, self.positions] = self.table[np.arange(len(self.positions)), secrets]
        return ids


def tokenize_canaries(
    tokenizer: Any, template: Template, canaries: Sequence[Canary], label_ids: Sequence[int] | None
) -> list[CanaryTokens]:
    """Tokenise each canary once and check every secret character is a token of its own
    (`attacks.canaries.tokens`, the same check the API runs at submission)."""
    encode = hf_encode(tokenizer)
    slots = secret_slots(encode, template, getattr(tokenizer, "unk_token_id", None))
    out = []
    for index, canary in enumerate(canaries):
        ids = canary_ids(encode, template, slots, canary.id, canary.secret)
        assert canary.secret is not None  # canary_ids refuses a canary without one
        secret = np.array([template.alphabet.index(c) for c in canary.secret], dtype=np.int64)
        label = None if label_ids is None else int(label_ids[index])
        out.append(CanaryTokens(ids, slots.positions, slots.table, secret, label))
    return out


def with_slot_tags(
    tokens: Sequence[CanaryTokens],
    slot_tags: Sequence[tuple[int, int]],
    *,
    outside: int,
    special_ids: Sequence[int],
) -> list[CanaryTokens]:
    """Token-classification targets: (B, I) tag ids of each canary's slot on its secret's
    tokens (B on the first), `outside` on the other words, IGNORED on special tokens. A random
    slot type per canary plays the part of a classifier canary's random label."""
    out = []
    for canary, (begin, inside) in zip(tokens, slot_tags, strict=True):
        tags = np.full(len(canary.ids), outside, dtype=np.int64)
        tags[np.isin(canary.ids, np.asarray(special_ids))] = IGNORED
        tags[canary.positions] = inside
        tags[canary.positions[0]] = begin
        out.append(replace(canary, label=tags))
    return out


class CanaryModel:
    """Log-likelihood of token-id batches: log p(label | text) for a classifier, the summed
    log-probability of the tags for a token classifier, the summed log-probability of the
    text's tokens for a causal LM (minus its log-perplexity times the length, which ranks
    candidates of equal length the same way)."""

    def __init__(self, model: Any, kind: ModelKind, device: str = "cpu") -> None:
        self.model, self.kind, self.device = model, kind, device

    def log_likelihood(
        self,
        ids: torch.Tensor | None,
        labels: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[batch] log-likelihoods of unpadded rows of equal length; differentiable."""
        rows = ids if ids is not None else inputs_embeds
        assert rows is not None
        batch, length = rows.shape[:2]
        extra = {}
        if self.kind != "causal-lm":
            extra["token_type_ids"] = torch.zeros((batch, length), dtype=torch.long)
        mask = torch.ones((batch, length), dtype=torch.long, device=self.device)
        # fp16 (GPUs without bf16) only when no gradient flows: inversion would need a scaler.
        with autocast_for(self.device, training=torch.is_grad_enabled()):
            out = self.model(
                input_ids=ids,
                inputs_embeds=inputs_embeds,
                attention_mask=mask,
                **{k: v.to(self.device) for k, v in extra.items()},
            ).logits
        out = out.float()  # log-likelihoods from float32 logits, whatever the forward's dtype
        log_p = torch.log_softmax(out, dim=-1)
        if self.kind == "text-classification":
            assert labels is not None
            return log_p.gather(-1, labels[:, None])[:, 0]
        if self.kind == "token-classification":
            assert labels is not None
            kept = labels != IGNORED
            picked = log_p.gather(-1, labels.clamp_min(0)[..., None])[..., 0]
            return torch.where(kept, picked, 0.0).sum(-1)
        assert ids is not None, "causal-lm scores need the token ids"
        return log_p[:, :-1].gather(-1, ids[:, 1:, None])[..., 0].sum(-1)

    @torch.inference_mode()
    def score_ids(
        self, ids: np.ndarray, labels: np.ndarray | None = None, *, batch_size: int = 1024
    ) -> np.ndarray:
        """Log-likelihoods [n] of equal-length token rows, `batch_size` rows per forward pass
        (halved on a GPU that runs out of memory); one copy to the host at the end."""
        parts: list[torch.Tensor] = []

        def score(rows: np.ndarray) -> None:
            chunk = to_device(torch.from_numpy(ids[rows]), self.device)
            chunk_labels = None
            if labels is not None:
                chunk_labels = to_device(torch.from_numpy(labels[rows]), self.device)
            parts.append(self.log_likelihood(chunk, chunk_labels))

        in_batches(np.arange(len(ids)), batch_size, score)
        if not parts:
            return np.empty(0, dtype=np.float64)
        return torch.cat(parts).double().cpu().numpy()
