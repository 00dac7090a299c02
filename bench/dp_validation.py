"""Does the DP verdict hold on real DP-SGD training? Correct models, broken ones, many seeds.

    .venv/bin/python -m bench.dp_validation                 # digits MLP and tiny BERT, 5 seeds
    .venv/bin/python -m bench.dp_validation --only digits --seeds 2   # a quick look

Every model is trained with Opacus DP-SGD (or deliberately not), audited as the worker
audits (loss and confidence attacks, Clopper-Pearson and Gaussian-DP bounds as one
Bonferroni family, `decide`), and the verdict is tallied per setting. A correct model must
never be called a violation; a grossly broken one (no noise, claimed epsilon <= 1, a
memorising model, >= 1000 members) must be flagged. Subtler bugs are reported as measured:
a black-box audit of a final model is not expected to catch them all.

Writes `bench/results/dp_validation.json` (every run) and `bench/results/dp_validation.md`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attacks.mia import AttackInputs, get_attack
from attacks.privacy import decide, family_bounds
from attacks.privacy.accounting import resolve_claim
from attacks.report import DPClaim, DPSGDParameters
from attacks.signals import classifier_signals
from bench.harness import RESULTS_DIR, machine_info, versions

DELTA = 1e-5
LABEL_NOISE = 0.2  # wrong labels force a model without real DP to memorise its members
ATTACKS = ("loss", "confidence")


@dataclass(frozen=True)
class Setting:
    """One way of training, and what its owner claims about it."""

    name: str
    model: str  # "digits" or "bert"
    kind: str  # correct, no-noise, no-clipping, rate-misreported, no-dp
    epsilon: float  # target epsilon of the noise calibration, or the declared claim
    broken: bool
    gross: bool  # no noise or no DP, claimed epsilon <= 1: must be flagged


SETTINGS = (
    Setting("correct, eps 1", "digits", "correct", 1.0, False, False),
    Setting("correct, eps 4", "digits", "correct", 4.0, False, False),
    Setting("correct, eps 8", "digits", "correct", 8.0, False, False),
    Setting("noise multiplier 0, claims eps 1", "digits", "no-noise", 1.0, True, True),
    Setting("no DP at all (memorising), claims eps 1", "digits", "no-dp", 1.0, True, True),
    Setting("clipping off, noise for eps 4", "digits", "no-clipping", 4.0, True, False),
    Setting(
        "sample rate 10x under-reported, eps 4", "digits", "rate-misreported", 4.0, True, False
    ),
    Setting("correct, eps 1", "bert", "correct", 1.0, False, False),
    Setting("correct, eps 8", "bert", "correct", 8.0, False, False),
    Setting("noise multiplier 0, claims eps 1", "bert", "no-noise", 1.0, True, True),
)

# Per model: members, epochs, batch size, learning rates, hidden size. Models without noise
# are trained until they fit their members (memorising: member accuracy about 1.0 despite 20%
# wrong labels); at 30 epochs a clipped noiseless MLP reaches only 0.84 and leaks less.
DIGITS = {
    "members": 1000,
    "epochs": 30,
    "epochs_noiseless": 100,
    "batch": 100,
    "lr_dp": 0.02,
    "lr_plain": 0.005,
}
BERT = {
    "members": 1000,
    "non_members": 1000,
    "epochs": 30,
    "batch": 50,
    "lr_noisy": 5e-3,  # DP noise needs a larger step to learn anything
    "lr_noiseless": 1e-3,  # the rate at which this model memorises without DP
    "hidden": 64,
}
BIG_NORM = 1e6  # "clipping off": a clipping norm no gradient reaches


def noiseless(setting: Setting) -> bool:
    return setting.kind in ("no-noise", "no-dp")


def digits_data(seed: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Digits images with 20% wrong labels; the first `members` of a random order are members."""
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(seed)
    x = torch.from_numpy((data.data / 16.0).astype(np.float32))
    y = data.target.copy()
    noisy = rng.random(len(y)) < LABEL_NOISE
    y[noisy] = (y[noisy] + rng.integers(1, 10, noisy.sum())) % 10
    member = np.zeros(len(y), dtype=bool)
    member[rng.permutation(len(y))[: DIGITS["members"]]] = True
    return x, y, member


def train_private(
    model: nn.Module,
    batches: Any,
    n_members: int,
    setting: Setting,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    step: Any,
) -> tuple[nn.Module, DPClaim]:
    """Train with Opacus as the setting says, and return the model and its owner's claim."""
    import opacus
    from opacus.accountants.utils import get_noise_multiplier

    sample_rate = batch_size / n_members
    steps = epochs * round(1 / sample_rate)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if setting.kind == "no-dp":
        for _ in range(epochs):
            for batch in batches(shuffle=True):
                optimizer.zero_grad()
                step(model, batch).backward()
                optimizer.step()
        return model.eval(), DPClaim(epsilon=setting.epsilon, delta=DELTA)
    sigma = 0.0
    if setting.kind != "no-noise":
        sigma = get_noise_multiplier(
            target_epsilon=setting.epsilon,
            target_delta=DELTA,
            sample_rate=sample_rate,
            steps=steps,
            accountant="rdp",
        )
    norm = BIG_NORM if setting.kind == "no-clipping" else 1.0
    engine = opacus.PrivacyEngine(accountant="rdp")
    module, optimizer, loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=batches(shuffle=True),
        noise_multiplier=sigma * 1.0 / norm,  # noise std sigma * 1, whatever the clipping
        max_grad_norm=norm,
    )
    for _ in range(epochs):
        for batch in loader:
            if len(batch[0]) == 0:
                continue
            optimizer.zero_grad()
            step(module, batch).backward()
            optimizer.step()
    if setting.kind == "no-noise":
        claim = DPClaim(epsilon=setting.epsilon, delta=DELTA)
    else:
        claimed_rate = sample_rate / 10 if setting.kind == "rate-misreported" else sample_rate
        claim = resolve_claim(
            epsilon=None,
            delta=DELTA,
            dp_sgd=DPSGDParameters(noise_multiplier=sigma, sample_rate=claimed_rate, steps=steps),
        )
    return module._module.eval(), claim


def run_digits(setting: Setting, seed: int) -> dict[str, Any]:
    x, y, member = digits_data(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    members = torch.utils.data.TensorDataset(x[member], torch.from_numpy(y[member]))
    loss_fn = nn.CrossEntropyLoss()

    def batches(shuffle: bool) -> Any:
        return torch.utils.data.DataLoader(members, batch_size=DIGITS["batch"], shuffle=shuffle)

    plain = setting.kind == "no-dp"
    model, claim = train_private(
        model,
        batches,
        int(member.sum()),
        setting,
        epochs=DIGITS["epochs_noiseless"] if noiseless(setting) else DIGITS["epochs"],
        batch_size=DIGITS["batch"],
        lr=DIGITS["lr_plain"] if plain else DIGITS["lr_dp"],
        step=lambda m, batch: loss_fn(m(batch[0]), batch[1]),
    )
    with torch.no_grad():
        logits = model(x).numpy().astype(np.float64)
    return audit(logits, y, member, claim)


def run_bert(setting: Setting, seed: int) -> dict[str, Any]:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from attacks.testing import build_tiny_text_classifier
    from demo.intent import make_intent_records

    n = BERT["members"] + BERT["non_members"]
    records = make_intent_records(n, seed=seed, label_noise=LABEL_NOISE)
    texts = [r["text"] for r in records]
    member = np.zeros(n, dtype=bool)
    member[np.random.default_rng(seed).permutation(n)[: BERT["members"]]] = True
    with tempfile.TemporaryDirectory() as folder:
        # The vocabulary covers every text, so unseen records are not all [UNK].
        build_tiny_text_classifier(Path(folder), texts, [r["label"] for r in records])
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        config = BertConfig.from_pretrained(folder, local_files_only=True)
    config.hidden_size, config.intermediate_size = BERT["hidden"], 2 * BERT["hidden"]
    config.num_hidden_layers, config.initializer_range = 1, 0.02
    config._attn_implementation = "eager"  # Opacus needs per-sample gradients of every op
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    label_ids = np.array([config.label2id[r["label"]] for r in records])
    encoded = tokenizer(
        texts, padding="max_length", truncation=True, max_length=32, return_tensors="pt"
    )
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    members = torch.utils.data.TensorDataset(
        ids[member], mask[member], torch.from_numpy(label_ids[member])
    )

    def forward(m: nn.Module, input_ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        # Explicit position and token-type ids keep Opacus's per-sample shapes right.
        length = input_ids.shape[1]
        positions = torch.arange(length).expand(input_ids.shape[0], -1)
        return m(
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            token_type_ids=torch.zeros_like(input_ids),
        ).logits

    def batches(shuffle: bool) -> Any:
        return torch.utils.data.DataLoader(members, batch_size=BERT["batch"], shuffle=shuffle)

    loss_fn = nn.CrossEntropyLoss()
    model, claim = train_private(
        model.train(),
        batches,
        int(member.sum()),
        setting,
        epochs=BERT["epochs"],
        batch_size=BERT["batch"],
        lr=BERT["lr_noiseless"] if noiseless(setting) else BERT["lr_noisy"],
        step=lambda m, batch: loss_fn(forward(m, batch[0], batch[1]), batch[2]),
    )
    with torch.no_grad():
        logits = torch.cat(
            [forward(model, ids[i : i + 256], mask[i : i + 256]) for i in range(0, n, 256)]
        )
    return audit(logits.numpy().astype(np.float64), label_ids, member, claim)


def audit(
    logits: np.ndarray, labels: np.ndarray, member: np.ndarray, claim: DPClaim
) -> dict[str, Any]:
    """The worker's audit on these outputs: attacks, the bound family, the verdict."""
    signals = classifier_signals(logits, labels)
    inputs = AttackInputs(target=signals)
    scores = {}
    for name in ATTACKS:
        score = np.asarray(get_attack(name).score(inputs), dtype=np.float64)
        scores[name] = (score[member], score[~member])
    # Every setting here is a DP-SGD training run (some broken), so the claim is DP-SGD's.
    bounds = family_bounds(scores, delta=DELTA, gaussian=True)
    verdict = decide(claim, bounds)
    by_method: dict[str, float] = {}
    for bound in bounds:
        by_method[bound.method] = max(by_method.get(bound.method, 0.0), bound.value)
    return {
        "claimed_epsilon": claim.claimed_epsilon,
        "accountants": {a.accountant: a.epsilon for a in claim.accountants},
        "verdict": verdict.status,
        "best_bound": verdict.epsilon_lower_bound,
        "deciding_bound": verdict.deciding_bound,
        "bound_by_method": by_method,
        "member_accuracy": float(np.mean(signals["correct"][member])),
        "non_member_accuracy": float(np.mean(signals["correct"][~member])),
        "n_members": int(member.sum()),
        "n_non_members": int((~member).sum()),
    }


RUNNERS = {"digits": run_digits, "bert": run_bert}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for setting in SETTINGS:
        mine = [r for r in runs if r["model"] == setting.model and r["setting"] == setting.name]
        if not mine:
            continue
        flagged = sum(r["verdict"] == "violation" for r in mine)
        rows.append(
            {
                "model": setting.model,
                "setting": setting.name,
                "broken": setting.broken,
                "gross": setting.gross,
                "seeds": len(mine),
                "violations": flagged,
                "claimed_epsilon": statistics.median(r["claimed_epsilon"] for r in mine),
                "max_bound": max(r["best_bound"] or 0.0 for r in mine),
                "max_cp": max(r["bound_by_method"].get("clopper-pearson", 0.0) for r in mine),
                "max_gdp": max(r["bound_by_method"].get("gdp", 0.0) for r in mine),
                "non_member_accuracy": statistics.mean(r["non_member_accuracy"] for r in mine),
                "seconds": statistics.mean(r["seconds"] for r in mine),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], document: dict[str, Any]) -> str:
    lines = [
        "# DP verdict validation (real Opacus DP-SGD)",
        "",
        f"Measured {document['finished']} on {document['machine']['cpu_model']} "
        f"({document['machine']['usable_cores']} cores), torch threads 1, "
        f"opacus {document['versions'].get('opacus', '?')}. Delta {DELTA:g}, 95% family-wise "
        f"confidence over {len(ATTACKS)} attacks x 2 statistics. Labels 20% noisy.",
        "",
        "| model | setting | seeds | flagged (violation) | claimed eps (median) "
        "| largest bound (CP / GDP) | non-member accuracy | s/run |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['setting']} | {row['seeds']} | "
            f"{row['violations']}/{row['seeds']} | {row['claimed_epsilon']:.2f} | "
            f"{row['max_bound']:.2f} ({row['max_cp']:.2f} / {row['max_gdp']:.2f}) | "
            f"{row['non_member_accuracy']:.2f} | {row['seconds']:.0f} |"
        )
    correct = [r for r in rows if not r["broken"]]
    if correct:
        worst = max(correct, key=lambda r: r["max_bound"])
        lines += [
            "",
            f"Correct models called `violation`: "
            f"{sum(r['violations'] for r in correct)} of {sum(r['seeds'] for r in correct)}. "
            f"Largest bound on a correct model: {worst['max_bound']:.2f} "
            f"({worst['model']}, {worst['setting']}, claimed {worst['claimed_epsilon']:.2f}).",
        ]
    gross = [r for r in rows if r["gross"]]
    if gross:
        lines.append(
            f"Grossly broken models flagged: {sum(r['violations'] for r in gross)} of "
            f"{sum(r['seeds'] for r in gross)}."
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", choices=sorted(RUNNERS), nargs="*", default=sorted(RUNNERS))
    parser.add_argument("--out", default="dp_validation")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = datetime.now(UTC)
    runs = []
    chosen = [s for s in SETTINGS if s.model in args.only]
    for i, setting in enumerate(chosen):
        for seed in range(args.seeds):
            begin = time.perf_counter()
            result = RUNNERS[setting.model](setting, seed)
            result.update(
                model=setting.model,
                setting=setting.name,
                seed=seed,
                seconds=time.perf_counter() - begin,
            )
            runs.append(result)
            print(
                f"[{i + 1}/{len(chosen)}] {setting.model} {setting.name} seed {seed}: "
                f"{result['verdict']}, claim {result['claimed_epsilon']:.2f}, "
                f"bound {result['best_bound']:.2f}, acc {result['non_member_accuracy']:.2f}, "
                f"{result['seconds']:.0f} s",
                flush=True,
            )
    document = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": {**versions(), **_extra_versions()},
        "settings": {"digits": DIGITS, "bert": BERT, "delta": DELTA, "label_noise": LABEL_NOISE},
        "runs": runs,
    }
    rows = summarise(runs)
    document["summary"] = rows
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{args.out}.json").write_text(json.dumps(document, indent=1))
    (RESULTS_DIR / f"{args.out}.md").write_text(markdown(rows, document))
    print(markdown(rows, document))
    return 0


def _extra_versions() -> dict[str, str]:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("opacus", "dp-accounting")}


if __name__ == "__main__":
    raise SystemExit(main())
