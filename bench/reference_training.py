"""Reference-model training: K small models stepped together (vmapped) vs one after another.

Offline and online attacks (LiRA, RMIA) need K reference models of the target's architecture.
`attacks.reference` trains them either together, one vmapped step for all K, or one after
another, with the same minibatch plan and hyperparameters. Each mode of each model family runs
in its own fresh child, so its wall time and peak RSS are its own:

- `mlp`: K MLPs (64 -> 128 -> 10) on scikit-learn's bundled digits (1797 records, standardised),
  each on its half of the records from `inclusion_masks`;
- `text`: K tiny BERT intent classifiers shaped like the audited example model, on the
  example's records (`train_reference_text_classifiers`), dropout switched off (see below).

**Equal work, asserted.** Both modes get the same inclusion masks and the same `minibatch_plan`
(its SHA-256 is in every child's payload and must match), so every model takes the same steps
over the same records in the same order. Without dropout the two modes must then train the same
models up to float rounding: each child saves the logits of its K models on every record, and
the parent compares the modes of a round: the largest logit difference relative to the logits'
scale (largest absolute logit) must stay under 1e-2, and every model must predict the same class
for at least 99.9% of the records (float32 rounding of a batched matmul differs from a single
one's in the last bits, and Adam's steps carry that on, so bit equality is not expected), and their
OUT accuracy (mean accuracy of each model on the records it did not train on). A speed-up
counts only when that check holds. Dropout is off because its masks come from different random
streams in the two modes (per model vs one vmapped draw); it is a per-element mask, so the work
it adds is the same in both.

**The ceiling.** A third child, `ceiling`, trains one model of the family on K x B records per
step (same number of steps): the same arithmetic as a together step, without vmap. K x
(sequential seconds per model-step) / (ceiling seconds per step) is then the most that training
together could gain on this machine; where the target is missed, that number says whether the
limit is the hardware (small matmuls already cost about what K of them cost apart) or vmap's
own overhead. It is a bound paired with nothing, so it runs once (round 0), not every round.

Speed-up = sequential / together training seconds as each call reports them (building the
models and tokenizing included, child start-up and imports excluded); the summary gives the
median of the per-round ratios (the modes of a round run back to back, in rotating order).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import ChildTask, Payload, Target, child_main, median, run_child

MODULE = "bench.reference_training"
FAMILIES = ("mlp", "text")
MODES = ("together", "sequential", "ceiling")
TARGET_SPEEDUP = 3.0
EQUAL_LOGITS_TOLERANCE = 1e-2
"""Largest |logit difference| / largest |logit| allowed between the modes."""
EQUAL_PREDICTIONS = 0.999
"""Least share of (model, record) pairs whose predicted class the modes agree on."""
K = 8


def settings(quick: bool) -> Payload:
    """K = 8 models; fewer epochs, records and rounds when quick."""
    return {
        "k": K,
        "seed": 0,
        "repeats": 1 if quick else 3,
        "mlp": {"epochs": 3 if quick else 30, "batch_size": 32, "lr": 1e-3},
        "text": {
            "epochs": 1 if quick else 5,
            "batch_size": 32,
            "lr": 1e-3,
            "n_records": 200 if quick else 1000,
        },
    }


def run(target: Target, *, quick: bool) -> Payload:
    """Every mode of both families, `repeats` rounds each in rotating order; logits of the two
    training modes compared per round."""
    config = settings(quick)
    runs: dict[str, dict[str, list[Payload]]] = {f: {m: [] for m in MODES} for f in FAMILIES}
    checks: dict[str, list[Payload]] = {f: [] for f in FAMILIES}
    with tempfile.TemporaryDirectory(prefix="leakgate-bench-refs-") as tmp:
        for family in FAMILIES:
            for round_ in range(config["repeats"]):
                shift = round_ % len(MODES)
                for mode in MODES[shift:] + MODES[:shift]:
                    if mode == "ceiling" and round_ > 0:  # a bound, paired with nothing: once
                        continue
                    logits = Path(tmp) / f"{family}-{mode}-{round_}.npy"
                    spec = {**config, "target": target.as_dict(), "logits_path": str(logits)}
                    runs[family][mode].append(run_child(MODULE, f"{family}-{mode}", spec).as_dict())
                checks[family].append(_compare_modes(Path(tmp), family, round_))
    return {"settings": config, "runs": runs, "checks": checks, "summary": summarise(runs, checks)}


def _compare_modes(folder: Path, family: str, round_: int) -> Payload:
    """Largest |logit difference| between the together and sequential models of one round."""
    import numpy as np

    paths = [folder / f"{family}-{mode}-{round_}.npy" for mode in ("together", "sequential")]
    if not all(path.exists() for path in paths):
        return {"round": round_, "max_abs_logit_diff": None}
    together, sequential = (np.load(path) for path in paths)
    diff = float(np.abs(together - sequential).max())
    scale = float(np.abs(sequential).max()) or 1.0
    same = together.argmax(axis=-1) == sequential.argmax(axis=-1)
    return {
        "round": round_,
        "max_abs_logit_diff": diff,
        "max_abs_logit": scale,
        "relative_diff": diff / scale,
        "same_prediction": float(same.mean()),
    }


def summarise(
    runs: dict[str, dict[str, list[Payload]]], checks: dict[str, list[Payload]]
) -> Payload:
    """Per family: medians per mode, the paired speed-up, the equal-work check and the ceiling."""
    summary: Payload = {}
    for family, modes in runs.items():
        row: Payload = {mode: _mode_summary(measured) for mode, measured in modes.items()}
        if all(row[mode]["ok"] for mode in ("together", "sequential")):
            row.update(_speedup(modes, row, checks.get(family, [])))
        summary[family] = row
    return summary


def _mode_summary(measured: list[Payload]) -> Payload:
    good = [r for r in measured if r["ok"]]
    if not good:
        payload = measured[-1]["payload"] if measured else {}
        return {
            "ok": False,
            "pending": payload.get("pending"),
            "error": payload.get("error", "not run"),
        }
    last = good[-1]["payload"]
    return {
        "ok": True,
        "training_s": median([r["payload"]["training_seconds"] for r in good]),
        "seconds_per_step": median([r["payload"]["seconds_per_step"] for r in good]),
        "wall_s": median([r["wall_s"] for r in good]),
        "peak_rss_mib": median([r["peak_rss_mib"] for r in good]),
        "out_accuracy": last["out_accuracy"],
        "trained_together": last["trained_together"],
        "note": last.get("note"),
        "n_records": last["n_records"],
        "n_models": last["n_models"],
        "batch_size": last["batch_size"],
        "steps": last["steps"],
        "plan_sha256": sorted({r["payload"]["plan_sha256"] for r in good}),
    }


def _speedup(modes: dict[str, list[Payload]], row: Payload, checks: list[Payload]) -> Payload:
    together, sequential = row["together"], row["sequential"]
    paired = [
        s["payload"]["training_seconds"] / t["payload"]["training_seconds"]
        for t, s in zip(modes["together"], modes["sequential"], strict=True)
        if t["ok"] and s["ok"]
    ]
    compared = [c for c in checks if c["max_abs_logit_diff"] is not None]
    diffs = [c["max_abs_logit_diff"] for c in compared]
    # Checks from results files before the relative check have neither key: they fail it.
    relative = [c.get("relative_diff", float("inf")) for c in compared]
    agree = [c.get("same_prediction", 0.0) for c in compared]
    equal_work = {
        "same_plan": len(set(together["plan_sha256"] + sequential["plan_sha256"])) == 1,
        "same_steps": together["steps"] == sequential["steps"],
        "max_abs_logit_diff": max(diffs) if diffs else None,
        "max_relative_diff": max(relative) if relative else None,
        "tolerance": EQUAL_LOGITS_TOLERANCE,
        "min_same_prediction": min(agree) if agree else None,
        "same_prediction_needed": EQUAL_PREDICTIONS,
        "out_accuracy": {
            "together": together["out_accuracy"],
            "sequential": sequential["out_accuracy"],
        },
    }
    equal_work["holds"] = bool(
        equal_work["same_plan"]
        and equal_work["same_steps"]
        and relative
        and max(relative) <= EQUAL_LOGITS_TOLERANCE
        and min(agree) >= EQUAL_PREDICTIONS
    )
    speedup = median(paired)
    result: Payload = {
        "paired_speedups": paired,
        "speedup": speedup,
        "speedup_of_medians": sequential["training_s"] / together["training_s"],
        "step_speedup": sequential["seconds_per_step"] / together["seconds_per_step"],
        "rss_ratio_together_over_sequential": together["peak_rss_mib"] / sequential["peak_rss_mib"],
        "equal_work": equal_work,
        "target": f">= {TARGET_SPEEDUP}x",
        "meets_target": bool(
            speedup >= TARGET_SPEEDUP and together["trained_together"] and equal_work["holds"]
        ),
    }
    ceiling = row.get("ceiling", {})
    if ceiling.get("ok"):
        result["ceiling_speedup"] = sequential["seconds_per_step"] / ceiling["seconds_per_step"]
        result["share_of_ceiling"] = result["step_speedup"] / result["ceiling_speedup"]
    return result


def markdown(result: Payload) -> list[str]:
    """Lines of the results table for this benchmark."""
    config = result["settings"]
    lines = [
        f"## 3. Reference-model training, K = {config['k']}: together vs one after another",
        "",
        f"Median of {config['repeats']} round(s) per mode (the ceiling: one run), each mode in "
        "a fresh process. MLP: "
        f"{config['mlp']['epochs']} epochs; text: {config['text']['epochs']} epoch(s) on "
        f"{config['text']['n_records']} records, dropout off; batch size 32, Adam lr 1e-3. "
        "OUT accuracy = mean accuracy of the K models on the records each did not train on. "
        "`ceiling` = one model on K x 32 records per step, the same arithmetic as a together "
        "step without vmap. s per step = one step of the plan (every model once), timed "
        "inside the training loop.",
        "",
        "| models | mode | training s | s per step | process wall s | peak RSS MiB "
        "| OUT accuracy | speed-up (paired median) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for family, row in result["summary"].items():
        for mode in MODES:
            cell = row.get(mode, {})
            if not cell.get("ok"):
                why = cell.get("pending") or cell.get("error") or "not run"
                state = "pending" if cell.get("pending") else "failed"
                lines.append(f"| {family} | {mode} | {state}: {_cell(why)} | | | | | |")
                continue
            speedup = f"{row['speedup']:.2f}x" if mode == "together" and "speedup" in row else ""
            name = mode
            if mode == "together" and not cell["trained_together"]:
                name = "together (fell back to sequential)"
            accuracy = f"{cell['out_accuracy']:.3f}" if mode != "ceiling" else ""
            lines.append(
                f"| {family} | {name} | {cell['training_s']:.1f} "
                f"| {_ms(cell.get('seconds_per_step'))} | {cell['wall_s']:.1f} "
                f"| {cell['peak_rss_mib']:.0f} | {accuracy} | {speedup} |"
            )
    lines.append("")
    for family, row in result["summary"].items():
        if "speedup" not in row:
            continue
        verdict = "met" if row["meets_target"] else "NOT met"
        rounds = ", ".join(f"{r:.2f}" for r in row.get("paired_speedups", [])) or "not kept"
        lines.append(
            f"- {family}: together is **{row['speedup']:.2f}x** faster (rounds: {rounds}; "
            f"target {row['target']}: {verdict}); peak RSS together / sequential "
            f"{row['rss_ratio_together_over_sequential']:.2f}x."
        )
        equal = row.get("equal_work")
        if equal is None:  # results files from before the check
            continue
        diff, relative = equal["max_abs_logit_diff"], equal.get("max_relative_diff")
        same = equal.get("min_same_prediction")
        scaled = "" if relative is None else f", {relative:.1e} of the largest logit"
        agreed = "" if same is None else f"; same predicted class for {same:.2%} of model-records"
        lines.append(
            f"- {family}, equal work: same minibatch plan {_yes(equal['same_plan'])}, same steps "
            f"{_yes(equal['same_steps'])}, largest logit difference between the modes "
            f"{'n/a' if diff is None else f'{diff:.1e}'}{scaled} (tolerance "
            f"{equal['tolerance']:.0e} of it){agreed}: "
            f"{'holds' if equal['holds'] else '**does not hold**'}."
        )
        if "ceiling_speedup" in row:
            lines.append(
                f"- {family}, where the limit is: a together step is {row['step_speedup']:.2f}x "
                f"faster than K steps apart; one model on K x 32 records per step (the same "
                f"arithmetic without vmap) would be {row['ceiling_speedup']:.2f}x faster, so "
                f"together reaches {100 * row['share_of_ceiling']:.0f}% of what this machine "
                "allows. The rest of the end-to-end gap is fixed cost (building the models, "
                "tokenizing)."
            )
        notes = {row.get(m, {}).get("note") for m in MODES} - {None}
        lines += [f"- {family}: {note}" for note in sorted(notes)]
    return [*lines, ""]


def _ms(seconds: float | None) -> str:
    """A step time in ms; results files from before step timing have none."""
    return "" if seconds is None else f"{1000 * seconds:.1f} ms"


def _yes(flag: Any) -> str:
    return "yes" if flag else "**no**"


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")[:200]


# --------------------------------------------------------------------------------------
# Child side
# --------------------------------------------------------------------------------------


def _plan(masks: Any, spec: Payload, family: str, mode: str) -> tuple[Any, Any, Payload]:
    """Masks, TrainConfig and {plan digest, steps} of this mode: K models on their halves, or,
    for the ceiling, one model on every record with K x B records per step, as many steps."""
    import numpy as np

    from attacks.reference import TrainConfig, minibatch_plan

    options = spec[family]
    config = TrainConfig(
        epochs=options["epochs"],
        lr=options["lr"],
        batch_size=options["batch_size"],
        seed=spec["seed"],
    )
    if mode == "ceiling":
        steps = len(minibatch_plan(masks, config)[0])
        masks = np.ones((1, masks.shape[1]), dtype=bool)
        wide = options["batch_size"] * spec["k"]
        per_epoch = math.ceil(masks.shape[1] / min(wide, masks.shape[1]))
        config = TrainConfig(
            epochs=math.ceil(steps / per_epoch),
            lr=options["lr"],
            batch_size=wide,
            seed=spec["seed"],
        )
    plan, _ = minibatch_plan(masks, config)
    return (
        masks,
        config,
        {"plan_sha256": hashlib.sha256(plan.tobytes()).hexdigest(), "steps": len(plan)},
    )


class StepClock:
    """Progress callback timing the training loop alone: from the first step's end to the
    last's, so building models and tokenizing stay out. Calls count model-steps."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.calls = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        self.first = now if self.first is None else self.first
        self.last, self.calls = now, self.calls + 1

    def seconds_per_plan_step(self, n_models: int, together: bool) -> float:
        """A step of the plan moves every model once: one call together, n_models apart."""
        per_call = (self.last - (self.first or 0.0)) / max(self.calls - 1, 1)
        return per_call if together else per_call * n_models


def _out_accuracy(logits: Any, labels: Any, masks: Any) -> list[float]:
    """Accuracy of each model on the records it did not train on (none for the ceiling)."""
    import numpy as np

    correct = np.asarray(logits).argmax(axis=-1) == np.asarray(labels)[None, :]
    out = ~np.asarray(masks)
    return [float(correct[k][out[k]].mean()) for k in range(len(out)) if out[k].any()]


def _payload(
    models: Any,
    logits: Any,
    labels: Any,
    masks: Any,
    config: Any,
    plan: Payload,
    spec: Payload,
    mode: str,
    clock: StepClock,
) -> Payload:
    import numpy as np

    if mode != "ceiling":
        np.save(spec["logits_path"], np.asarray(logits, dtype=np.float32))
    accuracy = _out_accuracy(logits, labels, masks)
    return {
        "training_seconds": models.training_seconds,
        "trained_together": models.trained_together,
        "note": models.note,
        "n_records": int(masks.shape[1]),
        "n_models": int(masks.shape[0]),
        "batch_size": config.batch_size,
        **plan,
        "seconds_per_step": clock.seconds_per_plan_step(int(masks.shape[0]), mode == "together"),
        "out_accuracy_per_model": accuracy,
        "out_accuracy": float(np.mean(accuracy)) if accuracy else None,
    }


def _mlp(spec: Payload, mode: str) -> Payload:
    import numpy as np
    from sklearn.datasets import load_digits
    from torch import nn

    from attacks.reference import inclusion_masks, train_reference_mlps

    digits = load_digits()
    x = digits.data.astype(np.float32)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    y = digits.target.astype(np.int64)
    masks, config, plan = _plan(
        inclusion_masks(len(x), spec["k"], seed=spec["seed"]), spec, "mlp", mode
    )

    def make_model() -> nn.Module:
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    clock = StepClock()
    models = train_reference_mlps(
        make_model, x, y, masks, config, together=mode == "together", device="cpu", progress=clock
    )
    return _payload(models, models.logits(x), y, masks, config, plan, spec, mode, clock)


def _without_dropout(model_dir: str, folder: Path) -> Path:
    """A copy of the target's folder whose config switches dropout off (see the docstring)."""
    import json
    import shutil

    copy = folder / "target"
    shutil.copytree(model_dir, copy)
    config_path = copy / "config.json"
    config = json.loads(config_path.read_text())
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
        if key in config:
            config[key] = 0.0
    config_path.write_text(json.dumps(config))
    return copy


def _text(spec: Payload, mode: str) -> Payload:
    import numpy as np
    from transformers import AutoConfig

    from attacks.reference import inclusion_masks, train_reference_text_classifiers
    from demo.intent import read_jsonl

    target = spec["target"]
    half = spec["text"]["n_records"] // 2
    records = read_jsonl(target["members"])[:half] + read_jsonl(target["non_members"])[:half]
    texts = [r["text"] for r in records]
    label2id = AutoConfig.from_pretrained(target["model_dir"], local_files_only=True).label2id
    labels = np.array([label2id[r["label"]] for r in records], dtype=np.int64)
    masks, config, plan = _plan(
        inclusion_masks(len(texts), spec["k"], seed=spec["seed"]), spec, "text", mode
    )
    with tempfile.TemporaryDirectory(prefix="leakgate-bench-text-") as tmp:
        model_dir = _without_dropout(target["model_dir"], Path(tmp))
        clock = StepClock()
        models = train_reference_text_classifiers(
            model_dir,
            texts,
            labels,
            masks,
            config,
            together=mode == "together",
            device="cpu",
            progress=clock,
        )
    return _payload(models, models.logits(texts), labels, masks, config, plan, spec, mode, clock)


def _task(family: str, mode: str) -> ChildTask:
    train = _mlp if family == "mlp" else _text
    return lambda spec: train(spec, mode)


TASKS = {f"{family}-{mode}": _task(family, mode) for family in FAMILIES for mode in MODES}


if __name__ == "__main__":
    child_main(TASKS)
