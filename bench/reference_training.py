"""Reference-model training: K small models stepped together (vmapped) vs one after another.

Offline and online attacks (LiRA, RMIA) need K reference models of the target's architecture.
`attacks.reference.training` trains them either together, one vmapped step for all K, or one
after another, with the same minibatches and hyperparameters either way. Each mode of each
model family runs in its own fresh child, so its wall time and peak RSS are its own:

- `mlp`: K MLPs (64 -> 128 -> 10) on scikit-learn's bundled digits (1797 records, standardised),
  each on its half of the records from `inclusion_masks`;
- `text`: K tiny BERT intent classifiers shaped like the audited example model, on the
  example's records (`train_reference_text_classifiers`).

Speed-up = sequential training seconds / together training seconds, as each call reports them
(model building included, child start-up and imports excluded). To show the modes produce
comparable models, each child also reports the mean accuracy of its K models on the records
each did not train on.
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.harness import Payload, Target, child_main, median, run_child

MODULE = "bench.reference_training"
FAMILIES = ("mlp", "text")
MODES = ("together", "sequential")
TARGET_SPEEDUP = 3.0
K = 8


def settings(quick: bool) -> Payload:
    """K = 8 models; fewer epochs and records when quick."""
    return {
        "k": K,
        "seed": 0,
        "repeats": 1 if quick else 2,
        "mlp": {"epochs": 3 if quick else 30, "batch_size": 32, "lr": 1e-3},
        "text": {
            "epochs": 1 if quick else 5,
            "batch_size": 32,
            "lr": 1e-3,
            "n_records": 200 if quick else 1000,
        },
    }


def run(target: Target, *, quick: bool) -> Payload:
    """Both modes of both families, `repeats` times each in alternating order."""
    config = settings(quick)
    spec = {**config, "target": target.as_dict()}
    runs: dict[str, dict[str, list[Payload]]] = {f: {m: [] for m in MODES} for f in FAMILIES}
    for family in FAMILIES:
        for round_ in range(config["repeats"]):
            order = MODES if round_ % 2 == 0 else MODES[::-1]
            for mode in order:
                runs[family][mode].append(run_child(MODULE, f"{family}-{mode}", spec).as_dict())
    return {"settings": config, "runs": runs, "summary": summarise(runs)}


def summarise(runs: dict[str, dict[str, list[Payload]]]) -> Payload:
    """Median training seconds per mode and the speed-up, per family."""
    summary: Payload = {}
    for family, modes in runs.items():
        row: Payload = {}
        for mode, measured in modes.items():
            good = [r for r in measured if r["ok"]]
            if not good:
                payload = measured[-1]["payload"] if measured else {}
                row[mode] = {
                    "ok": False,
                    "pending": payload.get("pending"),
                    "error": payload.get("error", "not run"),
                }
                continue
            last = good[-1]["payload"]
            row[mode] = {
                "ok": True,
                "training_s": median([r["payload"]["training_seconds"] for r in good]),
                "wall_s": median([r["wall_s"] for r in good]),
                "peak_rss_mib": median([r["peak_rss_mib"] for r in good]),
                "out_accuracy": last["out_accuracy"],
                "trained_together": last["trained_together"],
                "note": last.get("note"),
                "n_records": last["n_records"],
                "steps_per_model": last.get("steps_per_model"),
            }
        if all(row.get(mode, {}).get("ok") for mode in MODES):
            speedup = row["sequential"]["training_s"] / row["together"]["training_s"]
            row["speedup"] = speedup
            row["rss_ratio_together_over_sequential"] = (
                row["together"]["peak_rss_mib"] / row["sequential"]["peak_rss_mib"]
            )
            row["target"] = f">= {TARGET_SPEEDUP}x"
            row["meets_target"] = speedup >= TARGET_SPEEDUP and row["together"]["trained_together"]
        summary[family] = row
    return summary


def markdown(result: Payload) -> list[str]:
    """Lines of the results table for this benchmark."""
    config = result["settings"]
    lines = [
        f"## 3. Reference-model training, K = {config['k']}: together vs one after another",
        "",
        f"Median of {config['repeats']} run(s) per mode, each in a fresh process. MLP: "
        f"{config['mlp']['epochs']} epochs; text: {config['text']['epochs']} epoch(s) on "
        f"{config['text']['n_records']} records; batch size 32, Adam lr 1e-3. "
        "OUT accuracy = mean accuracy of the K models on the records each did not train on.",
        "",
        "| models | mode | training s | process wall s | peak RSS MiB | OUT accuracy | speed-up |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for family, row in result["summary"].items():
        for mode in MODES:
            cell = row.get(mode, {})
            if not cell.get("ok"):
                why = cell.get("pending") or cell.get("error") or "not run"
                state = "pending" if cell.get("pending") else "failed"
                lines.append(f"| {family} | {mode} | {state}: {_cell(why)} | | | | |")
                continue
            speedup = f"{row['speedup']:.2f}x" if mode == "together" and "speedup" in row else ""
            mode_name = (
                mode
                if cell["trained_together"] or mode != "together"
                else ("together (fell back to sequential)")
            )
            lines.append(
                f"| {family} | {mode_name} | {cell['training_s']:.1f} | {cell['wall_s']:.1f} "
                f"| {cell['peak_rss_mib']:.0f} | {cell['out_accuracy']:.3f} | {speedup} |"
            )
    lines.append("")
    for family, row in result["summary"].items():
        if "speedup" in row:
            verdict = "met" if row["meets_target"] else "NOT met"
            lines.append(
                f"- {family}: together is **{row['speedup']:.2f}x** faster "
                f"(target {row['target']}: {verdict}); peak RSS together / sequential "
                f"{row['rss_ratio_together_over_sequential']:.2f}x."
            )
        notes = {row.get(m, {}).get("note") for m in MODES} - {None}
        lines += [f"- {family}: {note}" for note in sorted(notes)]
    return [*lines, ""]


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")[:200]


# --------------------------------------------------------------------------------------
# Child side
# --------------------------------------------------------------------------------------


def _reference_api() -> Any:
    """`attacks.reference` if it exports the trainers, else its `training` module."""
    package = importlib.import_module("attacks.reference")
    if hasattr(package, "train_reference_mlps"):
        return package
    return importlib.import_module("attacks.reference.training")


def _inclusion_masks(n: int, k: int, seed: int) -> Any:
    try:  # older checkouts kept the masks in the package itself
        module = importlib.import_module("attacks.reference.masks")
    except ImportError:
        module = importlib.import_module("attacks.reference")
    return module.inclusion_masks(n, k, seed=seed)


def _out_accuracy(logits: Any, labels: Any, masks: Any) -> float:
    """Mean over models of the accuracy on the records that model did not train on."""
    import numpy as np

    predicted = np.asarray(logits).argmax(axis=-1)  # [K, n]
    correct = predicted == np.asarray(labels)[None, :]
    out = ~np.asarray(masks)
    return float(np.mean([correct[k][out[k]].mean() for k in range(len(out))]))


def _mlp(spec: Payload, together: bool) -> Payload:
    import numpy as np
    from sklearn.datasets import load_digits
    from torch import nn

    api = _reference_api()
    digits = load_digits()
    x = digits.data.astype(np.float32)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    y = digits.target.astype(np.int64)
    masks = _inclusion_masks(len(x), spec["k"], spec["seed"])
    options = spec["mlp"]
    config = api.TrainConfig(
        epochs=options["epochs"],
        lr=options["lr"],
        batch_size=options["batch_size"],
        seed=spec["seed"],
    )

    def make_model() -> nn.Module:
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    models = api.train_reference_mlps(
        make_model, x, y, masks, config, together=together, device="cpu"
    )
    return {
        "training_seconds": models.training_seconds,
        "trained_together": models.trained_together,
        "note": models.note,
        "n_records": len(x),
        "out_accuracy": _out_accuracy(models.logits(x), y, masks),
    }


def _text(spec: Payload, together: bool) -> Payload:
    import numpy as np
    from transformers import AutoConfig

    from demo.intent import read_jsonl

    api = _reference_api()
    target = spec["target"]
    options = spec["text"]
    half = options["n_records"] // 2
    records = read_jsonl(target["members"])[:half] + read_jsonl(target["non_members"])[:half]
    texts = [r["text"] for r in records]
    label2id = AutoConfig.from_pretrained(target["model_dir"], local_files_only=True).label2id
    labels = np.array([label2id[r["label"]] for r in records], dtype=np.int64)
    masks = _inclusion_masks(len(texts), spec["k"], spec["seed"])
    config = api.TrainConfig(
        epochs=options["epochs"],
        lr=options["lr"],
        batch_size=options["batch_size"],
        seed=spec["seed"],
    )
    models = api.train_reference_text_classifiers(
        target["model_dir"], texts, labels, masks, config, together=together, device="cpu"
    )
    return {
        "training_seconds": models.training_seconds,
        "trained_together": models.trained_together,
        "note": models.note,
        "n_records": len(texts),
        "out_accuracy": _out_accuracy(models.logits(texts), labels, masks),
    }


TASKS = {
    "mlp-together": lambda spec: _mlp(spec, together=True),
    "mlp-sequential": lambda spec: _mlp(spec, together=False),
    "text-together": lambda spec: _text(spec, together=True),
    "text-sequential": lambda spec: _text(spec, together=False),
}


if __name__ == "__main__":
    child_main(TASKS)
