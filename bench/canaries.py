"""Canary speed: candidates scored per second for exposure, seconds per canary inverted.

Exposure over a 4-digit pin scores all 10^4 candidates of one canary. Three ways, on the same
tiny BERT intent classifier (hidden 64, 2 layers, trained briefly with the canaries):

- `leakgate`: `measure_exposure` (candidate ids written into the canary's ids, 1024 a pass);
- `floor`: a bare `model(input_ids)` loop over the same prebuilt id batches, nothing else;
- `naive`: what a script does first: tokenise each candidate text and run it alone.

Exposure rounds alternate between leakgate and the floor and the median counts. Inversion: 100
canaries optimised together in one batch (200 Adam steps) against the same canaries inverted
one at a time (timed on two, per canary).

    .venv/bin/python -m bench.canaries [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from attacks.canaries import Template, generate_canaries, training_records
from attacks.canaries.exposure import all_secrets, measure_exposure
from attacks.canaries.extraction import invert_classifier
from attacks.canaries.model import CanaryModel, tokenize_canaries
from demo.intent import INTENTS, make_intent_records, train_intent_classifier

PIN = Template.resolve("pin")
ROUNDS = 5


def _model(folder: Path):
    base = make_intent_records(300, seed=0)
    canaries = generate_canaries(PIN, count=200, repetitions=2, seed=1, labels=INTENTS)
    vocab = [r["text"] for r in base] + [PIN.render(str(d) * 4) for d in range(10)]
    train_intent_classifier(folder, base + training_records(canaries), epochs=3, vocab_texts=vocab)
    model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokens = tokenize_canaries(tokenizer, PIN, canaries, [INTENTS.index(c.label) for c in canaries])
    return model, tokenizer, canaries, tokens


def _exposure(model, tokenizer, canaries, tokens, naive_n: int) -> dict:
    target = CanaryModel(model, "text-classification")
    canary = tokens[0]
    space = 10**4
    ids = torch.from_numpy(canary.with_secrets(all_secrets(4, 10)))
    with torch.inference_mode():
        model(input_ids=ids[:1024]).logits  # noqa: B018  (warm-up, for both loops alike)
    leakgate_rounds, floor_rounds = [], []
    for _ in range(ROUNDS):  # alternating, so slow phases of a shared machine hit both alike
        started = time.perf_counter()
        measure_exposure(target, [canary], 10, batch_size=1024)
        leakgate_rounds.append(space / (time.perf_counter() - started))
        started = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, space, 1024):
                model(input_ids=ids[start : start + 1024]).logits  # noqa: B018
        floor_rounds.append(space / (time.perf_counter() - started))
    leakgate, floor = statistics.median(leakgate_rounds), statistics.median(floor_rounds)

    texts = [PIN.render("".join(map(str, s))) for s in all_secrets(4, 10)[:naive_n]]
    started = time.perf_counter()
    with torch.inference_mode():
        for text in texts:
            model(**tokenizer(text, return_tensors="pt")).logits  # noqa: B018
    naive = naive_n / (time.perf_counter() - started)
    return {
        "candidate_space": space,
        "candidates_per_s": {"leakgate": leakgate, "floor": floor, "naive": naive},
        "leakgate_vs_floor": leakgate / floor,
        "leakgate_vs_naive": leakgate / naive,
    }


def _inversion(model, tokens, n_batched: int, n_single: int, steps: int) -> dict:
    target = CanaryModel(model, "text-classification")
    started = time.perf_counter()
    invert_classifier(target, tokens[:n_batched], steps=steps)
    batched = (time.perf_counter() - started) / n_batched
    started = time.perf_counter()
    for canary in tokens[:n_single]:
        invert_classifier(target, [canary], steps=steps)
    single = (time.perf_counter() - started) / n_single
    return {
        "canaries": n_batched,
        "steps": steps,
        "seconds_per_canary": {"batched": batched, "one_at_a_time": single},
        "speedup": single / batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, canaries, tokens = _model(Path(tmp) / "model")
    result = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()})",
        "load_1min_before": load_before,
        "exposure": _exposure(model, tokenizer, canaries, tokens, naive_n=500),
        "inversion": _inversion(model, tokens, n_batched=100, n_single=2, steps=200),
        "load_1min_after": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "canaries.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
