"""LoRA reference adapters for a causal LM: K adapters stepped together (vmapped) vs one after
another, over one frozen base.

`attacks.reference.lora.train_reference_lm_adapters` trains K = 8 LoRA adapters (rank 8,
peft's default modules: GPT-2's c_attn) over a tiny random GPT-2 (hidden 128, 2 layers, a
word-level vocabulary) on ~32-word texts, adapter k on its half of them (`inclusion_masks`).
Both modes use the same minibatch plan, seeds and optimizer, so they do equal work; each mode
runs in its own fresh child, so its wall time and peak RSS are its own. The children also
return every adapter's mean token loss on every text, and the parent records the largest
difference between the modes (they must agree within `LOSS_TOLERANCE`).

Speed-up = sequential training seconds / together training seconds, as each call reports them
(base loading, tokenizing and training; child start-up and imports excluded), median of the
paired rounds. Part of `python -m bench.run` (with the classifier references, `--only
reference`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.harness import Payload, child_main, median, run_child

MODULE = "bench.lm_references"
MODES = ("together", "sequential")
K = 8
LOSS_TOLERANCE = 1e-4
TARGET_SPEEDUP = 3.0


def settings(quick: bool) -> Payload:
    """K = 8 adapters; fewer texts, epochs and rounds when quick."""
    return {
        "k": K,
        "seed": 0,
        "repeats": 1 if quick else 2,
        "n_texts": 200 if quick else 400,
        "words_per_text": 32,
        "vocabulary": 500,
        "hidden_size": 128,
        "layers": 2,
        "rank": 8,
        "alpha": 16,
        "epochs": 1,
        "batch_size": 32,
        "lr": 1e-3,
    }


def run(*, quick: bool) -> Payload:
    """Both modes, `repeats` rounds each in alternating order, on one base model folder."""
    config = settings(quick)
    with tempfile.TemporaryDirectory(prefix="leakgate-lm-references-") as tmp:
        spec = {**config, "folder": str(Path(tmp) / "base")}
        build = run_child(MODULE, "build", spec).as_dict()
        if not build["ok"]:
            return {"settings": config, "build": build, "runs": {}, "summary": {}}
        runs: dict[str, list[Payload]] = {mode: [] for mode in MODES}
        for round_ in range(config["repeats"]):
            order = MODES if round_ % 2 == 0 else MODES[::-1]
            for mode in order:
                runs[mode].append(run_child(MODULE, mode, spec).as_dict())
    agreement = _agreement(runs)
    return {"settings": config, "runs": runs, "summary": summarise(runs, agreement)}


def _agreement(runs: dict[str, list[Payload]]) -> Payload:
    """Largest |loss together - loss sequential| over adapters, texts and round pairs; the
    per-text losses are then dropped from the runs (8 x n floats each)."""
    import numpy as np

    losses = {
        mode: [np.asarray(r["payload"].pop("per_text_loss")) for r in measured if r["ok"]]
        for mode, measured in runs.items()
    }
    if not all(losses.values()):
        return {"max_abs_loss_diff": None, "within_tolerance": False}
    diff = max(float(np.abs(a - b).max()) for a in losses["together"] for b in losses["sequential"])
    return {
        "max_abs_loss_diff": diff,
        "tolerance": LOSS_TOLERANCE,
        "within_tolerance": diff < LOSS_TOLERANCE,
    }


def summarise(runs: dict[str, list[Payload]], agreement: Payload) -> Payload:
    """Median training seconds per mode, the speed-up and the modes' agreement."""
    summary: Payload = {"agreement": agreement}
    for mode, measured in runs.items():
        good = [r for r in measured if r["ok"]]
        if not good:
            payload = measured[-1]["payload"] if measured else {}
            summary[mode] = {"ok": False, "error": payload.get("error", "not run")}
            continue
        last = good[-1]["payload"]
        summary[mode] = {
            "ok": True,
            "training_s": median([r["payload"]["training_seconds"] for r in good]),
            "wall_s": median([r["wall_s"] for r in good]),
            "peak_rss_mib": median([r["peak_rss_mib"] for r in good]),
            "trained_together": last["trained_together"],
            "note": last.get("note"),
            "steps_per_adapter": last["steps_per_adapter"],
            "in_loss": last["in_loss"],
            "out_loss": last["out_loss"],
        }
    if all(summary[mode]["ok"] for mode in MODES):
        together, sequential = summary["together"], summary["sequential"]
        paired = [
            s["payload"]["training_seconds"] / t["payload"]["training_seconds"]
            for t, s in zip(runs["together"], runs["sequential"], strict=True)
            if t["ok"] and s["ok"]
        ]
        summary["paired_speedups"] = paired
        summary["speedup"] = median(paired)
        summary["target"] = f">= {TARGET_SPEEDUP}x"
        summary["meets_target"] = bool(
            summary["speedup"] >= TARGET_SPEEDUP
            and together["trained_together"]
            and agreement["within_tolerance"]
        )
        summary["rss_ratio_together_over_sequential"] = (
            together["peak_rss_mib"] / sequential["peak_rss_mib"]
        )
    return summary


def markdown(result: Payload) -> list[str]:
    """Lines of the results table for this benchmark."""
    config, summary = result["settings"], result["summary"]
    lines = [
        f"## 3b. LoRA reference adapters for a causal LM, K = {config['k']}: together vs one "
        "after another",
        "",
        f"Median of {config['repeats']} run(s) per mode, each in a fresh process. Tiny GPT-2 "
        f"(hidden {config['hidden_size']}, {config['layers']} layers, "
        f"{config['vocabulary']}-word vocabulary), {config['n_texts']} texts of "
        f"{config['words_per_text']} words, LoRA rank {config['rank']} (alpha "
        f"{config['alpha']}), {config['epochs']} epoch(s), batch {config['batch_size']}, Adam "
        f"lr {config['lr']:g}. IN / OUT loss = mean token loss of the adapters on the texts "
        "they did / did not train on.",
        "",
        "| mode | training s | process wall s | peak RSS MiB | IN loss | OUT loss | speed-up |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    if not summary:
        error = result.get("build", {}).get("payload", {}).get("error", "not run")
        return [*lines, f"| build failed: {_cell(error)} | | | | | | |", ""]
    for mode in MODES:
        cell = summary.get(mode, {})
        if not cell.get("ok"):
            lines.append(f"| {mode} | failed: {_cell(cell.get('error', 'not run'))} | | | | | |")
            continue
        speedup = (
            f"{summary['speedup']:.2f}x" if mode == "together" and "speedup" in summary else ""
        )
        name = mode if cell["trained_together"] or mode != "together" else "together (fell back)"
        lines.append(
            f"| {name} | {cell['training_s']:.2f} | {cell['wall_s']:.1f} "
            f"| {cell['peak_rss_mib']:.0f} | {cell['in_loss']:.4f} | {cell['out_loss']:.4f} "
            f"| {speedup} |"
        )
    lines.append("")
    agreement = summary["agreement"]
    if agreement.get("max_abs_loss_diff") is not None:
        verdict = "within" if agreement["within_tolerance"] else "NOT within"
        lines.append(
            f"- Per-text mean token losses of the two modes differ by at most "
            f"{agreement['max_abs_loss_diff']:.2e} ({verdict} {agreement['tolerance']:g})."
        )
    if "speedup" in summary:
        lines.append(
            f"- Together is **{summary['speedup']:.2f}x** faster (rounds: "
            + ", ".join(f"{r:.2f}" for r in summary["paired_speedups"])
            + f"; target {summary['target']}: {'met' if summary['meets_target'] else 'NOT met'}"
            f"); peak RSS together / sequential "
            f"{summary['rss_ratio_together_over_sequential']:.2f}x."
        )
    notes = {summary.get(mode, {}).get("note") for mode in MODES} - {None}
    lines += [f"- {note}" for note in sorted(notes)]
    return [*lines, ""]


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")[:200]


# --------------------------------------------------------------------------------------
# Child side
# --------------------------------------------------------------------------------------


def _texts(spec: Payload) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(spec["seed"])
    words = [f"w{i}" for i in range(spec["vocabulary"])]
    # Zipf-like word frequencies, so there is something for the adapters to fit.
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    return [
        " ".join(rng.choice(words, spec["words_per_text"], p=weights))
        for _ in range(spec["n_texts"])
    ]


def _build(spec: Payload) -> Payload:
    from attacks.testing import build_tiny_causal_lm

    build_tiny_causal_lm(
        Path(spec["folder"]),
        _texts(spec),
        hidden_size=spec["hidden_size"],
        layers=spec["layers"],
        seed=spec["seed"],
    )
    return {"folder": spec["folder"]}


def _train(spec: Payload, together: bool) -> Payload:
    from attacks.reference import TrainConfig, inclusion_masks, train_reference_lm_adapters

    texts = _texts(spec)
    masks = inclusion_masks(len(texts), spec["k"], seed=spec["seed"])
    config = TrainConfig(
        epochs=spec["epochs"], lr=spec["lr"], batch_size=spec["batch_size"], seed=spec["seed"]
    )
    adapters = train_reference_lm_adapters(
        Path(spec["folder"]),
        texts,
        masks,
        config,
        rank=spec["rank"],
        alpha=spec["alpha"],
        together=together,
        device="cpu",
    )
    losses = adapters.mean_token_loss(texts, batch_size=spec["batch_size"])
    return {
        "training_seconds": adapters.training_seconds,
        "trained_together": adapters.trained_together,
        "note": adapters.note,
        "steps_per_adapter": int(adapters.loss_history.shape[0])
        * -(-int(masks.sum(axis=1).max()) // spec["batch_size"]),
        "in_loss": float(losses[masks].mean()),
        "out_loss": float(losses[~masks].mean()),
        "per_text_loss": losses,
    }


TASKS = {
    "build": _build,
    "together": lambda spec: _train(spec, together=True),
    "sequential": lambda spec: _train(spec, together=False),
}


if __name__ == "__main__":
    child_main(TASKS)
