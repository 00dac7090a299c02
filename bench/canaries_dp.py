"""DP-SGD closes the canary exposure gap: one tiny BERT with canaries, trained plainly and
with Opacus DP-SGD at a small epsilon, exposure of inserted vs held-out pins measured on both.

    .venv/bin/python -m bench.canaries_dp [--epsilon 1] [--epochs 15]

Both models start from the same weights and tokenizer and see the same records; DP-SGD follows
the recipe in /work/shared/NOTES.md (explicit position and token-type ids, eager attention).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import opacus
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from attacks.canaries import Template, generate_canaries, training_records
from attacks.canaries.exposure import measure_exposure
from attacks.canaries.model import CanaryModel, tokenize_canaries
from demo.intent import INTENTS, make_intent_records, train_intent_classifier

PIN = Template.resolve("pin")
DELTA = 1e-5


def _train_dp(folder: Path, records: list[dict], *, epsilon: float, epochs: int) -> dict:
    """DP-SGD on the untrained model saved in `folder` (Adam, batch 32, clipping at 1)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    model.config._attn_implementation = "eager"
    encoded = tokenizer([r["text"] for r in records], truncation=True, max_length=32)["input_ids"]
    width = max(len(ids) for ids in encoded)
    ids = torch.full((len(records), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, tokens in enumerate(encoded):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    labels = torch.tensor([INTENTS.index(r["label"]) for r in records])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(ids, mask, labels), batch_size=32, shuffle=True
    )
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    engine = opacus.PrivacyEngine(accountant="rdp")
    private, optimizer, loader = engine.make_private_with_epsilon(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        target_epsilon=epsilon,
        target_delta=DELTA,
        epochs=epochs,
        max_grad_norm=1.0,
    )
    for _ in range(epochs):
        for batch_ids, batch_mask, batch_labels in loader:
            if len(batch_ids) == 0:
                continue
            positions = torch.arange(batch_ids.shape[1]).expand(len(batch_ids), -1)
            loss = private(
                input_ids=batch_ids,
                attention_mask=batch_mask,
                position_ids=positions,
                token_type_ids=torch.zeros_like(batch_ids),
                labels=batch_labels,
            ).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    return {"noise_multiplier": optimizer.noise_multiplier, "epsilon": engine.get_epsilon(DELTA)}


def _gap(folder: Path, canaries) -> dict:
    model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokens = tokenize_canaries(tokenizer, PIN, canaries, [INTENTS.index(c.label) for c in canaries])
    exposure = np.array(
        [
            e.exposure
            for e in measure_exposure(CanaryModel(model, "text-classification"), tokens, 10)
        ]
    )
    inserted = np.array([c.inserted for c in canaries])
    return {
        "mean_exposure_inserted": float(exposure[inserted].mean()),
        "mean_exposure_held_out": float(exposure[~inserted].mean()),
        "n_inserted": int(inserted.sum()),
        "n_held_out": int((~inserted).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    base = make_intent_records(200, seed=0)
    canaries = generate_canaries(PIN, count=16, repetitions=20, seed=3, labels=INTENTS)
    records = base + training_records(canaries)
    vocab = [r["text"] for r in base] + [PIN.render(str(d) * 4) for d in range(10)]
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain, private = Path(tmp) / "plain", Path(tmp) / "dp"
        started = time.perf_counter()
        train_intent_classifier(plain, records, epochs=args.epochs, vocab_texts=vocab)
        result["plain"] = {**_gap(plain, canaries), "seconds": time.perf_counter() - started}
        started = time.perf_counter()
        train_intent_classifier(private, records, epochs=0, vocab_texts=vocab)
        accounted = _train_dp(private, records, epsilon=args.epsilon, epochs=args.epochs)
        result["dp_sgd"] = {
            **_gap(private, canaries),
            **accounted,
            "seconds": time.perf_counter() - started,
        }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "canaries_dp.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
