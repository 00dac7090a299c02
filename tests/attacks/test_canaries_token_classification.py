"""Canaries in a token classifier (joint intent and slot-filling NLU, the setting of Parikh et
al.): the secret's tokens carry a slot tag, a random slot type per canary; exposure and the
inversion use the likelihood of the canary's whole tag sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

from attacks.batching import pad_batch
from attacks.canaries import Template, generate_canaries
from attacks.canaries.exposure import measure_exposure
from attacks.canaries.extraction import invert_classifier
from attacks.canaries.model import IGNORED, CanaryModel, tokenize_canaries, with_slot_tags
from demo.intent import make_intent_records, train_intent_classifier

# Builds models, then measures exposure and inverts canaries by optimisation: minutes on 2 cores.
pytestmark = pytest.mark.slow

CODE = Template("my pin code is {d*3}")
SLOTS = ["pin", "code", "account", "card"]
TAGS = ["O"] + [f"{prefix}-{slot}" for slot in SLOTS for prefix in ("B", "I")]


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("token-classifier")
    base = [r["text"] for r in make_intent_records(150, seed=0)]
    vocab = base + [CODE.render(str(d) * 3) for d in range(10)]
    # The intent trainer with 0 epochs only writes the tokenizer (and an unused model).
    train_intent_classifier(folder, [{"text": t, "label": "card_lost"} for t in vocab], epochs=0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    canaries = generate_canaries(CODE, count=12, repetitions=20, seed=5, labels=SLOTS)
    tokens = tokenize_canaries(tokenizer, CODE, canaries, None)
    tokens = with_slot_tags(
        tokens,
        [(TAGS.index(f"B-{c.label}"), TAGS.index(f"I-{c.label}")) for c in canaries],
        outside=0,
        special_ids=tokenizer.all_special_ids,
    )
    rows = [
        (ids, np.where(np.isin(ids, tokenizer.all_special_ids), IGNORED, 0))
        for ids in (np.asarray(x) for x in tokenizer(base)["input_ids"])
    ]
    for canary, canary_tokens in zip(canaries, tokens, strict=True):
        if canary.inserted:
            rows += [(canary_tokens.ids, canary_tokens.label)] * canary.repetitions
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
        num_labels=len(TAGS),
    )
    model = BertForTokenClassification(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(15):
        for batch in torch.randperm(len(rows), generator=order).split(32):
            ids, mask = pad_batch([rows[i][0].tolist() for i in batch], tokenizer.pad_token_id)
            tags, _ = pad_batch([rows[i][1].tolist() for i in batch], IGNORED)
            loss = model(input_ids=ids, attention_mask=mask, labels=tags).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    return CanaryModel(model, "token-classification"), canaries, tokens


def test_inserted_tag_sequences_are_exposed_and_inverted(tagged):
    target, canaries, tokens = tagged
    inserted = np.array([c.inserted for c in canaries])
    assert inserted.any() and (~inserted).any()
    exposure = np.array([e.exposure for e in measure_exposure(target, tokens, 10)])
    assert exposure[inserted].mean() > exposure[~inserted].mean() + 2, (exposure, inserted)
    ranks = np.array([r.rank for r in invert_classifier(target, tokens, steps=150)])
    # Chance puts the median rank at 500 of 10^3.
    assert np.median(ranks[inserted]) < np.median(ranks[~inserted]), (ranks, inserted)
    assert np.median(ranks[inserted]) < 250, ranks
