"""Scoring throughput: leakgate's `TextClassifier.logits` against a bare batched forward loop.

Every black-box attack needs one forward pass per record, so a bare PyTorch loop over the same
records is the floor that no audit can beat. Three scorers run on the same model object, the
same texts, the same tokenizer, truncation (`max_length`) and batch size, in one child process:

- `floor` (the floor): tokenizes every text once, sorts by token length (longest first, as
  leakgate does), pads each batch by hand to its own longest row and runs `model(input_ids,
  attention_mask)` under `torch.inference_mode()` in leakgate's precision (autocast on CUDA),
  keeping logits on the device and copying them to the host once at the end. Nothing else: no
  label handling, no checks, no progress callbacks.
- `leakgate`: `TextClassifier.logits(texts, batch_size=..., max_length=...)`, exactly what an
  audit calls (it tokenizes once for lengths and again per batch, and checks its inputs).
- `naive`: the loop most scripts contain, for context: batches in the given order, tokenized
  and padded per batch by the tokenizer. It shows what length-sorted batching buys.

The child also times one bare tokenizer pass over all texts: on a tiny model tokenization is a
large share of scoring, and that share explains most gaps between the scorers.

Each scorer first runs once as a warm-up, then `repeats` rounds run all three in a rotating
order so slow phases of a shared machine hit each equally; the median round counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.harness import Payload, Target, child_main, median, run_child

if TYPE_CHECKING:
    import numpy as np

MODULE = "bench.scoring_throughput"
SCORERS = ("floor", "leakgate", "naive")
TARGET_RATIO = 0.9  # leakgate within 10% of the floor's records per second


def settings(quick: bool, device: str = "cpu") -> Payload:
    """Batch size and token budget as an audit uses them by default; fewer repeats if quick."""
    return {"batch_size": 32, "max_length": 128, "repeats": 2 if quick else 9, "device": device}


def run(target: Target, *, quick: bool, device: str = "cpu") -> Payload:
    """Measure all three scorers in one fresh child; summarise records/s and the ratio."""
    spec = {**settings(quick, device), "target": target.as_dict()}
    child = run_child(MODULE, "throughput", spec)
    result: Payload = {"settings": settings(quick, device), "child": child.as_dict()}
    if child.ok:
        result["summary"] = summarise(child.payload)
    return result


def summarise(payload: Payload) -> Payload:
    """Records/s per scorer and leakgate / floor, from a child's per-round seconds.

    Also applied by `bench.tables` to results files written before the ratio was paired, whose
    rounds are in the JSON.
    """
    rounds = payload["seconds"]
    n = payload["n_records"]
    per_scorer = {
        name: {
            "median_records_per_s": n / median(rounds[name]),
            "records_per_s": [n / seconds for seconds in rounds[name]],
            "median_seconds": median(rounds[name]),
        }
        for name in SCORERS
    }
    # Paired: the two scorers ran back to back in each round, so each round's ratio compares
    # them under the same machine load; the median of those is the headline.
    paired = [
        floor_s / leakgate_s
        for floor_s, leakgate_s in zip(rounds["floor"], rounds["leakgate"], strict=True)
    ]
    ratio = median(paired)
    return {
        "n_records": n,
        "scorers": per_scorer,
        "paired_ratios": paired,
        "leakgate_over_floor": ratio,
        "rounds_at_target": sum(value >= TARGET_RATIO for value in paired),
        "ratio_of_unpaired_medians": per_scorer["leakgate"]["median_records_per_s"]
        / per_scorer["floor"]["median_records_per_s"],
        "target": f">= {TARGET_RATIO}",
        "meets_target": ratio >= TARGET_RATIO,
        "max_abs_logit_difference": payload["max_abs_logit_difference"],
        "tokenize_pass_share_of_floor": median(payload["tokenize_pass_seconds"])
        / per_scorer["floor"]["median_seconds"],
    }


def markdown(result: Payload) -> list[str]:
    """Lines of the results table for this benchmark."""
    lines = ["## 1. Scoring throughput (records/s, median of rounds)", ""]
    if "summary" not in result:
        return [*lines, f"Failed: {result['child']['payload'].get('error', 'no result')}", ""]
    summary = result["summary"]
    settings_ = result["settings"]
    lines += [
        f"{summary['n_records']} texts, batch size {settings_['batch_size']}, "
        f"max_length {settings_['max_length']}, {settings_['repeats']} rounds after a warm-up; "
        f"torch threads: {result['child']['payload']['torch_threads']}; device "
        f"{settings_.get('device', 'cpu')}.",
        "",
        "| scorer | records/s (median) | min | max | vs floor |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    floor = summary["scorers"]["floor"]["median_records_per_s"]
    for name in SCORERS:
        row = summary["scorers"][name]
        lines.append(
            f"| {name} | {row['median_records_per_s']:.0f} | {min(row['records_per_s']):.0f} | "
            f"{max(row['records_per_s']):.0f} | {row['median_records_per_s'] / floor:.2f}x |"
        )
    verdict = "met" if summary["meets_target"] else "NOT met"
    paired = summary.get("paired_ratios")
    lines += [
        "",
        f"leakgate / floor = **{summary['leakgate_over_floor']:.2f}**"
        + (
            f", the median of the {len(paired)} per-round ratios ({summary['rounds_at_target']} "
            f"at or above the target; ratio of the unpaired medians "
            f"{summary['ratio_of_unpaired_medians']:.2f})"
            if paired
            else ""
        )
        + f" (target {summary['target']}: {verdict}); largest logit difference between "
        f"leakgate and the floor: {summary['max_abs_logit_difference']:.2e}.",
        f"One tokenizer pass over all texts takes "
        f"{summary['tokenize_pass_share_of_floor']:.0%} of the floor's time on this model, "
        "so each extra pass a scorer makes shows directly in its throughput.",
        "",
    ]
    return lines


# --------------------------------------------------------------------------------------
# Child side
# --------------------------------------------------------------------------------------


def _throughput(spec: Payload) -> Payload:
    import time

    import numpy as np
    import torch

    from attacks.device import precision_name
    from attacks.targets import TextClassifier
    from demo.intent import read_jsonl

    target = spec["target"]
    texts = [r["text"] for r in read_jsonl(target["members"])]
    texts += [r["text"] for r in read_jsonl(target["non_members"])]
    classifier = TextClassifier.load(target["model_dir"], device=spec.get("device", "cpu"))
    batch_size, max_length = spec["batch_size"], spec["max_length"]

    def leakgate() -> np.ndarray:
        return classifier.logits(texts, batch_size=batch_size, max_length=max_length)

    def floor() -> np.ndarray:
        return floor_logits(classifier.model, classifier.tokenizer, texts, batch_size, max_length)

    def naive() -> np.ndarray:
        return naive_logits(classifier.model, classifier.tokenizer, texts, batch_size, max_length)

    device = spec.get("device", "cpu")

    def sync() -> None:  # every scorer returns host arrays; this only makes the clock explicit
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    scorers = {"floor": floor, "leakgate": leakgate, "naive": naive}
    outputs = {name: scorer() for name, scorer in scorers.items()}  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in scorers}
    names = list(scorers)
    for round_ in range(spec["repeats"]):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = time.perf_counter()
            scorers[name]()
            sync()
            seconds[name].append(time.perf_counter() - start)
    tokenize_seconds = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        classifier.tokenizer(texts, truncation=True, max_length=max_length)
        tokenize_seconds.append(time.perf_counter() - start)
    difference = float(np.abs(outputs["leakgate"] - outputs["floor"]).max())
    return {
        "n_records": len(texts),
        "seconds": seconds,
        "tokenize_pass_seconds": tokenize_seconds,
        "max_abs_logit_difference": difference,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "precision": precision_name(device),
    }


def floor_logits(
    model: Any, tokenizer: Any, texts: list[str], batch_size: int, max_length: int
) -> np.ndarray:
    """The bare loop: tokenize once, sort by length, pad per batch, forward, collect on the
    device, one copy to the host."""
    import numpy as np
    import torch

    from attacks.device import autocast_for

    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort(-np.fromiter(map(len, encoded), dtype=np.int64), kind="stable")
    pad_id = tokenizer.pad_token_id
    out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
    parts = []
    with torch.inference_mode(), autocast_for(model.device):
        for start in range(0, len(texts), batch_size):
            batch = order[start : start + batch_size]
            rows = [encoded[i] for i in batch]
            ids = torch.full((len(rows), len(rows[0])), pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
            ids, mask = ids.to(model.device), mask.to(model.device)
            parts.append(model(input_ids=ids, attention_mask=mask).logits)
    out[order] = torch.cat(parts).float().cpu().numpy()
    return out


def naive_logits(
    model: Any, tokenizer: Any, texts: list[str], batch_size: int, max_length: int
) -> np.ndarray:
    """The common script: batches in input order, tokenized and padded per batch (in the same
    precision, so only the batching differs)."""
    import numpy as np
    import torch

    from attacks.device import autocast_for

    parts = []
    with torch.inference_mode(), autocast_for(model.device):
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            parts.append(model(**encoded.to(model.device)).logits.float().cpu().numpy())
    return np.concatenate(parts)


if __name__ == "__main__":
    child_main({"throughput": _throughput})
