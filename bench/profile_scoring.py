"""Where leakgate's scoring time goes at real sizes: one profiled call per (model, length).

    .venv/bin/python -m bench.profile_scoring            # writes results/<date>-<host>-profile.md

Uses the models and subsamples of `bench.scoring_floor` (built there and cached) and cProfile
(py-spy is not installed here): one warm-up call, then one profiled call of exactly what the
worker calls. The table splits the call into the model's forward pass and, within it, the
output layer (an LM's vocabulary projection, or BERT's dense layers) and the activation
functions, then the parts outside the forward pass: the LM's per-token statistics and the
tokenizer. Profiling adds a little overhead to every Python call, so the shares are close,
not exact; the bench's paired rounds are the measurement.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bench import scoring_floor
from bench.harness import CACHE_DIR, RESULTS_DIR, machine_info

# (label, file suffix, function): summed cumulative time of every matching function. Linear
# layers are `nn.Linear` (all of BERT's, only the LM head of GPT-2, whose blocks use Conv1D).
PARTS = (
    ("model forward (everything below)", None, None),
    ("  nn.Linear layers", "torch/nn/modules/linear.py", "forward"),
    ("  GPT-2 Conv1D layers", "transformers/pytorch_utils.py", "forward"),
    ("  activation functions", "transformers/activations.py", "forward"),
    ("  attention (SDPA)", "transformers/integrations/sdpa_attention.py", "sdpa_attention_forward"),
    (
        "LM token statistics (log p, mu, sigma)",
        "attacks/targets/causal_lm.py",
        "token_statistics_from_logits",
    ),
    ("tokenizer", "transformers/tokenization_utils_base.py", "__call__"),
)


def profile(name: str, length: int, n_records: int, threads: int) -> tuple[float, dict[str, float]]:
    """Seconds of one leakgate call and seconds per part."""
    import torch

    from attacks.targets import CausalLM, TextClassifier

    torch.set_num_threads(threads)
    folder, _ = scoring_floor.ensure_model(
        name, {}, (scoring_floor.N_MEMBERS, scoring_floor.N_NON_MEMBERS), CACHE_DIR, 0
    )
    is_lm = name == "gpt2-small"
    target: Any = (CausalLM if is_lm else TextClassifier).load(folder, device="cpu")
    texts = scoring_floor.subsample(folder, n_records, 0)
    batch_size = min(32, n_records)

    def call() -> Any:
        if is_lm:
            return target.token_statistics(texts, batch_size=batch_size, max_length=length)
        return target.logits(texts, batch_size=batch_size, max_length=length)

    call()
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(call)
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    top_model = type(target.model).forward.__code__
    parts: dict[str, float] = {}
    for label, suffix, function in PARTS:
        seconds = 0.0
        for (file, line, func), (_, _, _, cumulative, _) in stats.items():
            if suffix is None:
                matches = file == top_model.co_filename and line == top_model.co_firstlineno
            else:
                matches = file.endswith(suffix) and func == function
            if matches:
                seconds += cumulative
        parts[label] = seconds
    return total, parts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_scoring", description=__doc__)
    parser.add_argument("--threads", type=int, default=scoring_floor.DEFAULT_THREADS)
    args = parser.parse_args(argv)
    config = scoring_floor.settings(False)
    started = datetime.now(UTC)
    lines = [
        "# Where scoring time goes at real sizes (cProfile, one call each)",
        "",
        f"- Date: {started.isoformat(timespec='seconds')}; command: "
        "`.venv/bin/python -m bench.profile_scoring`",
        f"- Machine: {machine_info()['cpu_model']}; {args.threads} thread(s); 1-min load at start "
        f"{os.getloadavg()[0]:.2f}",
        "",
        "| model | max length | records | call s | part | s | share of call |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name in scoring_floor.MODELS:
        for length in config["lengths"]:
            n = config["records_per_round"][str(length)]
            total, parts = profile(name, length, n, args.threads)
            for label, seconds in parts.items():
                if seconds > 0:
                    lines.append(
                        f"| {name} | {length} | {n} | {total:.2f} | {label} | {seconds:.2f} "
                        f"| {seconds / total:.0%} |"
                    )
            print(f"{name}/{length}: {total:.2f} s", flush=True)
    path = RESULTS_DIR / f"{started:%Y-%m-%d}-{machine_info()['hostname']}-profile.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
