"""Extraction: recover a canary's secret from the model, given the text around it.

Text and token classifiers (white box): ModIvA-style inversion (Parikh, Dupuy & Gupta, ACL
2022). The real prefix embeddings stay; each secret position holds a softmax over the slot
alphabet's token embeddings, optimised with Adam to make the canary's label (or tag sequence)
likely. Many canaries are optimised together in one batch. Causal LMs: beam decoding from the
prefix, restricted to the alphabet at the secret's positions (greedy is a beam of one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from attacks.canaries.exposure import all_secrets, exact_rank
from attacks.canaries.model import CanaryModel, CanaryTokens
from attacks.device import autocast_for

RANK_BUDGET = 100_000
"""Up to this many candidates the rank under the inverted distribution is exact; beyond it
it is estimated from uniformly sampled candidates."""


@dataclass(frozen=True)
class Extraction:
    recovered: np.ndarray
    extracted: bool
    per_position_accuracy: float
    rank: float | None
    """Rank of the true secret under the inverted distribution (classifiers only)."""


def invert_classifier(
    model: CanaryModel,
    canaries: list[CanaryTokens],
    *,
    steps: int = 200,
    lr: float = 0.1,
    beam: int = 0,
    batch_size: int = 256,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[Extraction]:
    """Invert every canary's secret from its label; `beam` > 0 re-scores that many of the
    inverted distribution's best secrets with the model and keeps the most likely."""
    if not canaries:
        return []
    if model.kind == "causal-lm" or any(c.label is None for c in canaries):
        raise ValueError("inversion is for classifiers and needs each canary's label or tags")
    groups: dict[tuple, list[int]] = {}
    for index, canary in enumerate(canaries):
        key = (len(canary.ids), tuple(canary.positions), canary.table.tobytes())
        groups.setdefault(key, []).append(index)
    out: list[Extraction | None] = [None] * len(canaries)
    done = 0
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            log_q = _optimise(model, [canaries[i] for i in chunk], steps, lr)
            for row, index in enumerate(chunk):
                out[index] = _decode(model, canaries[index], log_q[row], beam, seed)
            done += len(chunk)
            if progress is not None:
                progress(done, len(canaries))
    return [e for e in out if e is not None]


def _label_of(canary: CanaryTokens) -> np.ndarray:
    """The label inversion optimises towards: a class id, or a row of tag ids."""
    labels = canary.labels_for(1)
    if labels is None:
        raise ValueError("inverting a canary needs its label")
    return labels[0]


def _optimise(model: CanaryModel, group: list[CanaryTokens], steps: int, lr: float) -> np.ndarray:
    """Per-position log-distributions [canaries, positions, alphabet] after Adam on the label
    loss; starts uniform, so nothing but the model's gradient prefers a character."""
    first = group[0]
    embeddings = model.model.get_input_embeddings().weight.detach()
    device = embeddings.device
    ids = torch.from_numpy(np.stack([c.ids for c in group])).to(device)
    labels = torch.from_numpy(np.stack([_label_of(c) for c in group])).to(device)
    positions = torch.from_numpy(first.positions).to(device)
    alphabet_embeds = embeddings[torch.from_numpy(first.table).to(device)]  # [pos, A, hidden]
    base = embeddings[ids]
    theta = torch.zeros(
        (len(group), len(first.positions), first.table.shape[1]), device=device, requires_grad=True
    )
    optimizer = torch.optim.Adam([theta], lr=lr)
    parameters = list(model.model.parameters())
    flags = [p.requires_grad for p in parameters]
    for p in parameters:
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            mixed = torch.einsum("cpa,pah->cph", torch.softmax(theta, -1), alphabet_embeds)
            inputs = base.clone()
            inputs[:, positions] = mixed
            loss = -model.log_likelihood(None, labels, inputs_embeds=inputs).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        for p, flag in zip(parameters, flags, strict=True):
            p.requires_grad_(flag)
    return torch.log_softmax(theta.detach(), -1).double().cpu().numpy()


def _decode(
    model: CanaryModel, canary: CanaryTokens, log_q: np.ndarray, beam: int, seed: int
) -> Extraction:
    guess = log_q.argmax(-1)
    if beam > 0:
        candidates = _beam(log_q, beam)
        scores = model.score_ids(
            canary.with_secrets(candidates), canary.labels_for(len(candidates))
        )
        guess = candidates[int(np.argmax(scores))]
    return Extraction(
        recovered=guess,
        extracted=bool(np.array_equal(guess, canary.secret)),
        per_position_accuracy=float(np.mean(guess == canary.secret)),
        rank=_rank_under(log_q, canary.secret, seed),
    )


def _beam(log_q: np.ndarray, width: int) -> np.ndarray:
    """The `width` most likely secrets under independent per-position distributions."""
    beams = np.zeros((1, 0), dtype=np.int64)
    totals = np.zeros(1)
    for position in range(log_q.shape[0]):
        expanded = totals[:, None] + log_q[position][None, :]
        best = np.argsort(-expanded, axis=None, kind="stable")[:width]
        rows, chars = np.unravel_index(best, expanded.shape)
        beams = np.concatenate([beams[rows], chars[:, None]], axis=1)
        totals = expanded[rows, chars]
    return beams


def _rank_under(log_q: np.ndarray, secret: np.ndarray, seed: int) -> float:
    """Rank of the true secret among all secrets by inverted log-probability (1 = the top)."""
    n_slots, alphabet_size = log_q.shape
    true = float(log_q[np.arange(n_slots), secret].sum())
    space = alphabet_size**n_slots
    if space <= RANK_BUDGET:
        candidates = all_secrets(n_slots, alphabet_size)
        scores = log_q[np.arange(n_slots), candidates].sum(-1)
        own = int(np.ravel_multi_index(tuple(secret), (alphabet_size,) * n_slots))
        scores[own] = true
        return exact_rank(true, scores)
    rng = np.random.default_rng(seed)
    sampled = rng.integers(0, alphabet_size, size=(RANK_BUDGET, n_slots))
    better = float(np.mean(log_q[np.arange(n_slots), sampled].sum(-1) > true))
    return 1.0 + better * (space - 1)


@torch.inference_mode()
def decode_causal_lm(
    model: CanaryModel,
    canaries: list[CanaryTokens],
    *,
    beam: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[Extraction]:
    """Beam search over the secret's positions, forcing the template's other tokens."""
    out = []
    for index, canary in enumerate(canaries):
        ids = torch.from_numpy(canary.ids[: canary.positions[0]]).to(model.device)[None, :]
        totals = torch.zeros(1, device=model.device, dtype=torch.float64)
        slot = 0
        for position in range(int(canary.positions[0]), len(canary.ids)):
            with autocast_for(model.device):
                logits = model.model(input_ids=ids, use_cache=False).logits[:, -1].double()
            log_p = torch.log_softmax(logits, -1)
            if slot < len(canary.positions) and position == canary.positions[slot]:
                choices = torch.from_numpy(canary.table[slot]).to(model.device)
                expanded = totals[:, None] + log_p[:, choices]
                best = torch.argsort(expanded.flatten(), descending=True, stable=True)[:beam]
                rows, chars = best // len(choices), best % len(choices)
                ids = torch.cat([ids[rows], choices[chars][:, None]], dim=1)
                totals = expanded[rows, chars]
                slot += 1
            else:
                token = int(canary.ids[position])
                totals = totals + log_p[:, token]
                column = torch.full((len(ids), 1), token, device=model.device)
                ids = torch.cat([ids, column], dim=1)
        best_ids = ids[int(torch.argmax(totals))].cpu().numpy()
        lookup = [
            {int(t): a for a, t in enumerate(canary.table[s])} for s in range(len(canary.positions))
        ]
        guess = np.array([lookup[s][int(best_ids[p])] for s, p in enumerate(canary.positions)])
        out.append(
            Extraction(
                recovered=guess,
                extracted=bool(np.array_equal(guess, canary.secret)),
                per_position_accuracy=float(np.mean(guess == canary.secret)),
                rank=None,
            )
        )
        if progress is not None:
            progress(index + 1, len(canaries))
    return out
