"""Scoring at real model sizes: leakgate against a bare forward loop and the machine's matmul rate.

Two models built from configs with the architectures' default sizes (no downloads, random
weights: throughput does not depend on what the weights are):

- `bert-base`: `BertForSequenceClassification(BertConfig())`, about 110M parameters, 2 labels;
- `gpt2-small`: `GPT2LMHeadModel(GPT2Config())`, about 124M parameters, vocabulary 50257.

Each gets a whitespace word-level tokenizer trained on 10^4 + 10^4 synthetic texts (96-160
words each, as `attacks/testing.py` builds its tokenizers), saved like an uploaded model and
loaded with `TextClassifier.load` / `CausalLM.load`, as the worker does. Each (model, max
length) pair runs in its own fresh child, which times, on one fixed subsample of the records:

- `leakgate`: `TextClassifier.logits` / `CausalLM.token_statistics` (for the LM that includes
  the per-token log p, mu and sigma every LM attack reads), exactly what an audit calls;
- `floor`: the same token ids (tokenized, sorted by length and padded before the clock starts)
  through `model(input_ids, attention_mask)` under `torch.inference_mode()`, in the same batches
  and precision, logits left on the device (an LM's dropped after each batch): no tokenizing,
  no statistics, no copies per batch.

Rounds are paired: each round runs both (alternating which goes first), then a large
`torch.matmul` twice at the same thread count; the faster is the machine's rate in that
round. The headline is
the median of the per-round ratios leakgate / floor (records/s), and the share of the matmul
rate each scorer reaches, with FLOPs counted by `torch.utils.flop_counter` over the floor's
batches (the issue's estimate, 2 x parameters x tokens, is kept beside it).

A full audit of 10^4 + 10^4 records at these sizes takes hours on 2 CPU cores, so rates are
measured on `records_per_round` records per round, not on all 2 x 10^4; the summary gives the
time a full pass would take at the measured rate.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.harness import CACHE_DIR, Payload, child_main, median, run_child

MODULE = "bench.scoring_floor"
MODELS = ("bert-base", "gpt2-small")
TARGET_RATIO = 0.9  # leakgate within 10% of the bare loop (paired median)
TARGET_FLOOR_SHARE = 0.5  # at least half the machine's matmul rate ...
FLOOR_SHARE_RUN = "bert-base/128"  # ... for the 110M model at length 128
N_MEMBERS = N_NON_MEMBERS = 10_000
DEFAULT_THREADS = 1


def settings(quick: bool, *, device: str = "cpu", threads: int | None = None) -> Payload:
    """Subsample and rounds sized so the full run takes about 6 minutes on 2 CPU cores.

    Batch size 32 is the audit default (`options.batch_size`); a round smaller than that is
    one batch of its size. One thread unless told: the scorers and the matmul rate share one
    thread count, and on cores shared with other work a 2-thread pool stalls at every op.
    """
    if quick:
        lengths, per_round, rounds = [32], {"32": 4}, 2
    elif device.startswith("cuda"):  # enough records per round that launches do not dominate
        lengths, per_round, rounds = [32, 128], {"32": 4096, "128": 2048}, 9
    else:  # short rounds: a pair then sees the same load from the machine's other work
        lengths, per_round, rounds = [32, 128], {"32": 32, "128": 8}, 7
    return {
        "models": list(MODELS),
        "lengths": lengths,
        "records_per_round": per_round,
        "rounds": rounds,
        "batch_size": 32,
        "warmup_records": 4,
        "n_members": N_MEMBERS,
        "n_non_members": N_NON_MEMBERS,
        "device": device,
        "threads": threads or DEFAULT_THREADS,
        "seed": 0,
    }


def run(
    *,
    quick: bool,
    device: str = "cpu",
    threads: int | None = None,
    config_overrides: Payload | None = None,
    settings_overrides: Payload | None = None,
    cache_dir: Path = CACHE_DIR,
) -> Payload:
    """Build (or reuse) both models, then one measured child per (model, length).

    `config_overrides` ({model: {config field: value}}) shrinks the architectures and
    `settings_overrides` the rounds, for tests; the bench itself sets neither.
    """
    config = {**settings(quick, device=device, threads=threads), **(settings_overrides or {})}
    overrides = config_overrides or {}
    result: Payload = {"settings": config, "config_overrides": overrides, "runs": {}}
    for name in config["models"]:
        sizes = (config["n_members"], config["n_non_members"])
        folder, build = ensure_model(
            name, overrides.get(name, {}), sizes, cache_dir, config["seed"]
        )
        for length in config["lengths"]:
            spec = {
                **config,
                "model": name,
                "folder": str(folder),
                "max_length": length,
                "n_records": config["records_per_round"][str(length)],
            }
            child = run_child(MODULE, "measure", spec, timeout_s=3600)
            key = f"{name}/{length}"
            result["runs"][key] = {"build": build, "child": child.as_dict()}
            if child.ok:
                result["runs"][key]["summary"] = summarise(child.payload)
    return result


def ensure_model(
    name: str, overrides: Payload, sizes: tuple[int, int], cache_dir: Path, seed: int
) -> tuple[Path, Payload]:
    """The model folder (model, tokenizer, member and non-member texts) and its build facts,
    built once in a child and then reused."""
    parts = [f"floor-{name}-s{seed}"]
    if sizes != (N_MEMBERS, N_NON_MEMBERS):
        parts.append(f"m{sizes[0]}-n{sizes[1]}")
    parts += [f"{key}{value}" for key, value in sorted(overrides.items())]
    folder = cache_dir / "-".join(parts)
    marker = folder / "build.json"
    if not marker.exists():
        spec = {
            "model": name,
            "folder": str(folder),
            "overrides": overrides,
            "n_members": sizes[0],
            "n_non_members": sizes[1],
            "seed": seed,
        }
        built = run_child(MODULE, "build", spec, timeout_s=3600)
        if not built.ok:
            raise RuntimeError(f"building {name} failed: {built.payload.get('error')}")
        marker.write_text(json.dumps(built.payload, indent=1))
    return folder, json.loads(marker.read_text())


def summarise(payload: Payload) -> Payload:
    """Paired ratios and shares of the matmul rate, all rounds kept."""
    n = payload["n_records"]
    rounds = payload["rounds"]
    leakgate = [n / r["leakgate_s"] for r in rounds]
    floor = [n / r["floor_s"] for r in rounds]
    matmul = [r["matmul_flops_per_s"] for r in rounds]
    flops = payload["flops_per_pass"]
    ratios = [lg / fl for lg, fl in zip(leakgate, floor, strict=True)]
    share_leakgate = [flops / r["leakgate_s"] / r["matmul_flops_per_s"] for r in rounds]
    share_floor = [flops / r["floor_s"] / r["matmul_flops_per_s"] for r in rounds]
    ratio = median(ratios)
    leakgate_rate = median(leakgate)
    return {
        "n_records_per_round": n,
        "batch_size": payload["batch_size"],
        "n_rounds": len(rounds),
        "tokens_per_record": payload["tokens"] / n,
        "leakgate_records_per_s": leakgate_rate,
        "floor_records_per_s": median(floor),
        "paired_ratios": ratios,
        "leakgate_over_floor": ratio,
        "rounds_at_target": sum(value >= TARGET_RATIO for value in ratios),
        "matmul_gflops_per_s": median(matmul) / 1e9,
        "gflops_per_record": flops / n / 1e9,
        "gflops_per_record_2pt": 2 * payload["n_parameters"] * payload["tokens"] / n / 1e9,
        "leakgate_share_of_matmul": median(share_leakgate),
        "floor_share_of_matmul": median(share_floor),
        "full_audit_s": (payload["n_members"] + payload["n_non_members"]) / leakgate_rate,
        "target": f">= {TARGET_RATIO}",
        "meets_target": ratio >= TARGET_RATIO,
    }


def headline_rows(result: Payload) -> list[str]:
    """One headline row per (model, length): the paired ratio and the floor share."""
    rows = []
    for key, run_ in result.get("runs", {}).items():
        summary = run_.get("summary")
        if summary is None:
            rows.append(f"| 1b. scoring at size ({key}) | failed | >= {TARGET_RATIO} | |")
            continue
        met = "yes" if summary["meets_target"] else "**no**"
        rows.append(
            f"| 1b. scoring at size ({key}): leakgate / bare loop, paired median "
            f"({summary['leakgate_share_of_matmul']:.0%} of matmul rate) "
            f"| {summary['leakgate_over_floor']:.2f} | {summary['target']} | {met} |"
        )
        if key == FLOOR_SHARE_RUN:
            share = summary["leakgate_share_of_matmul"]
            rows.append(
                f"| 1b. scoring at size ({key}): leakgate's share of the machine's matmul rate "
                f"| {share:.0%} | >= {TARGET_FLOOR_SHARE:.0%} "
                f"| {'yes' if share >= TARGET_FLOOR_SHARE else '**no**'} |"
            )
    return rows


def markdown(result: Payload) -> list[str]:
    """The section of the results tables for this benchmark."""
    config = result["settings"]
    lines = [
        "## 1b. Scoring at real model sizes (BERT-base, GPT-2 small)",
        "",
        f"Models built from `BertConfig()` / `GPT2Config()` (random weights), device "
        f"{config['device']}, {config['threads']} intra-op thread(s), {config['rounds']} paired "
        f"rounds per row. Rates are measured on a fixed subsample of records per round "
        f"(column n, in batches of the size in brackets), **not** on all "
        f"{config['n_members']} + {config['n_non_members']} records; the last column is what "
        "one pass over all of them would take at leakgate's rate.",
        "",
        *table(result),
        "",
        "ratio = median over rounds of (leakgate records/s / bare-loop records/s) measured "
        "back to back; share = FLOPs of the pass (counted by `torch.utils.flop_counter`) / time "
        "/ the matmul rate measured in the same round, median over rounds.",
        "",
    ]
    return lines


def table(result: Payload) -> list[str]:
    """records/s, paired median ratio and matmul shares, one row per (model, length)."""
    rows = [
        "| model | max length | tokens/record | n (batch) | leakgate rec/s | bare loop rec/s "
        "| ratio (paired median) | rounds >= 0.9 | share of matmul: leakgate / bare "
        "| matmul GFLOP/s | full 2x10^4 pass |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, run_ in result.get("runs", {}).items():
        name, length = key.split("/")
        summary = run_.get("summary")
        if summary is None:
            error = run_["child"]["payload"].get("error", "no result")
            rows.append(f"| {name} | {length} | failed: {error} | | | | | | | | |")
            continue
        rows.append(
            f"| {name} | {length} | {summary['tokens_per_record']:.0f} "
            f"| {summary['n_records_per_round']} ({summary['batch_size']}) "
            f"| {summary['leakgate_records_per_s']:.1f} | {summary['floor_records_per_s']:.1f} "
            f"| {summary['leakgate_over_floor']:.2f} "
            f"| {summary['rounds_at_target']} of {summary['n_rounds']} "
            f"| {summary['leakgate_share_of_matmul']:.0%} / {summary['floor_share_of_matmul']:.0%} "
            f"| {summary['matmul_gflops_per_s']:.0f} | {_duration(summary['full_audit_s'])} |"
        )
    return rows


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


# --------------------------------------------------------------------------------------
# Child side: building the models
# --------------------------------------------------------------------------------------


def corpus(n: int, seed: int) -> list[str]:
    """Synthetic texts of 96-160 words from a 5000-word vocabulary with Zipf-like frequencies:
    long enough that truncation, not the text, sets the length at 32 and most at 128."""
    import numpy as np

    rng = np.random.default_rng(seed)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words = sorted({"".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(8000)})
    words = words[:5000]
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    lengths = rng.integers(96, 161, size=n)
    picks = rng.choice(len(words), size=int(lengths.sum()), p=weights)
    texts, start = [], 0
    for length in lengths:
        texts.append(" ".join(words[i] for i in picks[start : start + length]))
        start += length
    return texts


def _build(spec: Payload) -> Payload:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2LMHeadModel,
        PreTrainedTokenizerFast,
    )

    folder = Path(spec["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    n_members = spec["n_members"]
    texts = corpus(n_members + spec["n_non_members"], spec["seed"])
    for file_name, part in (
        ("members.jsonl", texts[:n_members]),
        ("non_members.jsonl", texts[n_members:]),
    ):
        with (folder / file_name).open("w") as handle:
            handle.writelines(json.dumps({"text": text}) + "\n" for text in part)

    overrides = spec["overrides"]
    torch.manual_seed(spec["seed"])
    if spec["model"] == "bert-base":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials))
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        wrapped = PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            pad_token="[PAD]",
            unk_token="[UNK]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            model_max_length=512,
        )
        config = BertConfig(pad_token_id=tokenizer.token_to_id("[PAD]"), **overrides)
        model: Any = BertForSequenceClassification(config)
    elif spec["model"] == "gpt2-small":
        end_of_text = "<|endoftext|>"
        tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tokenizer.train_from_iterator(
            texts, trainers.WordLevelTrainer(special_tokens=[end_of_text, "<unk>"])
        )
        eos_id = tokenizer.token_to_id(end_of_text)
        wrapped = PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            bos_token=end_of_text,
            eos_token=end_of_text,
            unk_token="<unk>",
            model_max_length=1024,
        )
        config = GPT2Config(bos_token_id=eos_id, eos_token_id=eos_id, **overrides)
        model = GPT2LMHeadModel(config)
    else:
        raise ValueError(f"unknown model {spec['model']!r} (known: {', '.join(MODELS)})")
    wrapped.save_pretrained(folder)
    model.save_pretrained(folder, safe_serialization=True)
    return {
        "model": spec["model"],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size_config": int(config.vocab_size),
        "vocab_size_tokenizer": tokenizer.get_vocab_size(),
        "overrides": overrides,
        "build_seconds": time.perf_counter() - start,
    }


# --------------------------------------------------------------------------------------
# Child side: measuring
# --------------------------------------------------------------------------------------


def _measure(spec: Payload) -> Payload:
    import os

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from attacks.device import autocast_for, precision_name
    from attacks.targets import CausalLM, TextClassifier

    torch.set_num_threads(spec["threads"])
    folder, device = Path(spec["folder"]), spec["device"]
    is_lm = spec["model"] == "gpt2-small"
    target: Any = (CausalLM if is_lm else TextClassifier).load(folder, device=device)
    max_length = spec["max_length"]
    if is_lm and target.context_length is not None:
        max_length = min(max_length, target.context_length)

    texts = subsample(folder, spec["n_records"], spec["seed"])
    batch_size = min(spec["batch_size"], len(texts))

    def leakgate(subset: list[str]) -> Any:
        if is_lm:
            return target.token_statistics(subset, batch_size=batch_size, max_length=max_length)
        return target.logits(subset, batch_size=batch_size, max_length=max_length)

    batches, order, tokens = floor_batches(target, texts, batch_size, max_length)

    def floor(batches_: list[tuple[Any, Any]]) -> Any:
        outputs, last = [], None
        # The scorers' own precision choice (bf16/fp16 on CUDA only).
        with torch.inference_mode(), autocast_for(device):
            for input_ids, attention_mask in batches_:
                extra = {"use_cache": False} if is_lm else {}
                last = target.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
                if not is_lm:  # [batch, labels]: small; an LM's logits are dropped per batch
                    outputs.append(last.logits)
            if is_lm:
                return last.logits.float().cpu()  # one sync at the end
            return torch.cat(outputs).float().cpu()

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    matmul = matmul_rate_probe(device)

    warm = texts[: spec["warmup_records"]]
    leakgate(warm)
    floor(floor_batches(target, warm, batch_size, max_length)[0])
    matmul()

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        floor(batches)
    flops = counter.get_total_flops()

    rounds = []
    for index in range(spec["rounds"]):
        times: dict[str, float] = {}
        names = ("leakgate", "floor") if index % 2 == 0 else ("floor", "leakgate")
        load_before = os.getloadavg()[0]
        for name in names:
            sync()
            start = time.perf_counter()
            output = leakgate(texts) if name == "leakgate" else floor(batches)
            sync()
            times[name] = time.perf_counter() - start
            # Dropped at once: an LM's bare-loop logits (GPT-2: 50257 floats per token) kept
            # alive while the other scorer ran made whichever ran second 10-25% slower.
            del output
        rounds.append(
            {
                "first": names[0],
                "leakgate_s": times["leakgate"],
                "floor_s": times["floor"],
                "matmul_flops_per_s": max(matmul(), matmul()),
                "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
        )
    # Agreement from one more, untimed pass of each scorer.
    difference = agreement(is_lm, leakgate(texts), floor(batches), order, batches)
    return {
        "model": spec["model"],
        "max_length": max_length,
        "n_records": len(texts),
        "batch_size": batch_size,
        "n_members": spec["n_members"],
        "n_non_members": spec["n_non_members"],
        "tokens": tokens,
        "n_parameters": target.n_parameters,
        "flops_per_pass": flops,
        "rounds": rounds,
        "max_abs_difference": difference,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "precision": precision_name(device),
    }


def subsample(folder: Path, n_records: int, seed: int) -> list[str]:
    """A fixed subsample: half members, half non-members, the same records every round."""
    import numpy as np

    rng = np.random.default_rng(seed)
    texts = []
    for file_name in ("members.jsonl", "non_members.jsonl"):
        with (folder / file_name).open() as handle:
            rows = [json.loads(line)["text"] for line in handle]
        take = sorted(rng.choice(len(rows), size=n_records // 2, replace=False))
        texts += [rows[i] for i in take]
    return texts


def floor_batches(
    target: Any, texts: list[str], batch_size: int, max_length: int
) -> tuple[list[tuple[Any, Any]], Any, int]:
    """Padded (input_ids, attention_mask) batches on the device, longest first as leakgate
    batches them, the order of records in them, and the number of real tokens."""
    import numpy as np
    import torch

    tokenizer = target.tokenizer
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = []
    for start in range(0, len(texts), batch_size):
        rows = [encoded[i] for i in order[start : start + batch_size]]
        ids = torch.full((len(rows), len(rows[0])), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        batches.append((ids.to(target.device), mask.to(target.device)))
    return batches, order, int(lengths.sum())


def matmul_rate_probe(device: str) -> Any:
    """A function timing one large square matmul, returning FLOP/s, in the scorers' precision:
    float32 on CPU, the autocast dtype on CUDA."""
    import torch

    from attacks.device import autocast_dtype

    cuda = device.startswith("cuda")
    n = 8192 if cuda else 2048
    dtype = autocast_dtype(device) or torch.float32
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)

    def probe() -> float:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.matmul(a, b)
        if cuda:
            torch.cuda.synchronize()
        return 2 * n**3 / (time.perf_counter() - start)

    return probe


def agreement(is_lm: bool, scored: Any, floored: Any, order: Any, batches: list) -> float:
    """Largest absolute difference between what leakgate returned and the bare loop's logits:
    logits for the classifier; log p(x_t) of the last batch's records for the LM."""
    import numpy as np
    import torch

    if not is_lm:
        return float(np.abs(scored[order] - floored.numpy()).max())
    input_ids, attention_mask = batches[-1]
    last = order[len(order) - len(input_ids) :]
    log_p = torch.log_softmax(floored.double(), dim=-1)
    picked = log_p[:, :-1].gather(-1, input_ids[:, 1:, None].cpu())[..., 0]
    worst = 0.0
    for row, record in enumerate(last):
        n = int(attention_mask[row].sum()) - 1
        worst = max(worst, float(np.abs(picked[row, :n].numpy() - scored.log_prob[record]).max()))
    return worst


if __name__ == "__main__":
    child_main({"build": _build, "measure": _measure})
