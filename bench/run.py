"""Run every benchmark side by side in one run and write the results.

    .venv/bin/python -m bench.run                 # the full run (under 20 min on 2 cores)
    .venv/bin/python -m bench.run --quick         # small sizes, checks that all of it runs
    .venv/bin/python -m bench.run --device cuda   # scoring benchmarks on a GPU

This process only orchestrates: it builds (or reuses) the audited models, starts one fresh
child process per measurement, and writes `bench/results/<date>-<hostname>[-<device>].json`
(everything measured, with machine, device, load and versions), then regenerates the tables
(`bench/results/latest.md` and the marked blocks of README.md and bench/README.md, see
`bench.tables`) from the committed results files. A quick run writes `...-quick.json` and
`latest-quick.md` instead, which git ignores, and touches no README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bench import (
    end_to_end_vs_peers,
    lm_references,
    reference_training,
    scoring_floor,
    scoring_throughput,
    sharding,
    tables,
)
from bench.harness import (
    RESULTS_DIR,
    Payload,
    device_info,
    ensure_target,
    load_average,
    machine_info,
    set_child_threads,
    versions,
)

BENCHMARKS = ("throughput", "floor", "peers", "reference", "sharding")
NEEDS_TARGET = {"throughput", "peers", "reference"}  # the tiny intent classifier

# The audited model: the bundled intent classifier at a size where scoring and the attacks,
# not start-up, take most of each tool's time; quick is for checking that everything runs.
FULL_TARGET = {"n_members": 5000, "n_non_members": 5000, "epochs": 30}
QUICK_TARGET = {"n_members": 300, "n_non_members": 300, "epochs": 30}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads per measured process (default: torch's, one per core); "
        "use 1 on cores shared with other work, where torch's default pool stalls",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="device for the scoring benchmarks (throughput, floor), e.g. cuda; the peers and "
        "reference training run on the CPU",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        default=list(BENCHMARKS),
        help="run only these benchmarks (default: all)",
    )
    args = parser.parse_args(argv)
    command = "python -m bench.run" + (" --quick" if args.quick else "")
    if args.threads is not None:
        command += f" --threads {args.threads}"
    set_child_threads(args.threads)
    if args.device != "cpu":
        command += f" --device {args.device}"
    if set(args.only) != set(BENCHMARKS):
        command += " --only " + " ".join(args.only)

    started = datetime.now(UTC)
    load_before = load_average()
    _say(f"load average before: {load_before}")
    target = None
    if NEEDS_TARGET & set(args.only):
        sizes = QUICK_TARGET if args.quick else FULL_TARGET
        _say(f"audited model: intent classifier {sizes} (built once, then cached)")
        clock = time.perf_counter()
        target = ensure_target(**sizes)
        _say(f"  ready in {time.perf_counter() - clock:.0f} s")

    results: dict[str, Payload] = {}
    if "throughput" in args.only:
        assert target is not None
        _say("1. scoring throughput ...")
        results["scoring_throughput"] = scoring_throughput.run(
            target, quick=args.quick, device=args.device
        )
    if "floor" in args.only:
        _say("1b. scoring at real sizes (BERT-base, GPT-2 small; builds them once) ...")
        results["scoring_floor"] = scoring_floor.run(
            quick=args.quick, device=args.device, threads=args.threads
        )
    if "peers" in args.only:
        assert target is not None
        _say("2. end to end vs peers ...")
        results["end_to_end_vs_peers"] = end_to_end_vs_peers.run(target, quick=args.quick)
    if "reference" in args.only:
        assert target is not None
        _say("3. reference-model training ...")
        results["reference_training"] = reference_training.run(target, quick=args.quick)
        _say("3b. LoRA reference adapters over a causal LM ...")
        results["lm_references"] = lm_references.run(quick=args.quick)
    if "sharding" in args.only:
        _say("4. one audit over 1 vs 2 worker processes (PostgreSQL + Redis) ...")
        results["sharding"] = sharding.run(quick=args.quick)
    load_after = load_average()
    _say(f"load average after: {load_after}")

    document = {
        "date": started.isoformat(timespec="seconds"),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "command": command,
        "quick": args.quick,
        "machine": machine_info(),
        "device": args.device,
        "device_info": device_info(args.device),
        "threads_per_process": args.threads or f"torch default ({os.cpu_count()})",
        "load_average": {"before": load_before, "after": load_after},
        "versions": versions(),
        "target": target.as_dict() if target is not None else None,
        "benchmarks": results,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{result_stem(document, started)}.json"
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    if args.quick:
        markdown_path = RESULTS_DIR / "latest-quick.md"
        markdown_path.write_text("\n".join(render_markdown(document, json_path.name)))
        _say(f"wrote {json_path.relative_to(RESULTS_DIR.parent.parent)} and {markdown_path.name}")
    else:
        written = tables.update()
        _say(f"wrote {json_path.relative_to(RESULTS_DIR.parent.parent)}; regenerated {written}")
    print("\n".join(headline(document)))
    return 0


def result_stem(document: Payload, started: datetime) -> str:
    """`<date>-<hostname>`, then the device when not the CPU, then `-quick` for quick runs."""
    stem = f"{started:%Y-%m-%d}-{document['machine']['hostname']}"
    if document["device"] != "cpu":
        stem += "-" + document["device"].replace(":", "")
    return stem + ("-quick" if document["quick"] else "")


def headline(document: Payload) -> list[str]:
    """The ratios the issue sets targets for, as a Markdown table."""
    rows = ["| benchmark | measured | target | met |", "| --- | ---: | --- | --- |"]
    for key, result in document["benchmarks"].items():
        rows += tables.headline_rows(key, result, tables.device_of(document, key))
    return rows


def render_markdown(document: Payload, json_name: str) -> list[str]:
    machine, load = document["machine"], document["load_average"]
    kind = "quick run (small sizes; for checking, not for quoting)" if document["quick"] else ""
    lines = [
        "# leakgate benchmark results" + (f": {kind}" if kind else ""),
        "",
        f"- Date: {document['date']} (took {document['duration_s'] / 60:.1f} min)",
        f"- Command: `.venv/bin/{document['command']}`; everything measured: `{json_name}`",
        f"- Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores "
        f"({machine['usable_cores']} usable), {machine['ram_gib']} GiB RAM, {machine['os']}",
        f"- Device: {_device(document)}; intra-op threads per measured process: "
        f"{document['threads_per_process']}",
        f"- Load average (1, 5, 15 min) before: {load['before']}, after: {load['after']} "
        "(a load above 0 means other work shared the cores; each measurement's 1-min load "
        "is in the JSON)",
        "- Versions: " + ", ".join(f"{name} {v}" for name, v in document["versions"].items()),
        f"- Audited model: {_target(document['target'])}",
        "",
        "## Headline ratios",
        "",
        *headline(document),
        "",
    ]
    benchmarks = document["benchmarks"]
    if "scoring_throughput" in benchmarks:
        lines += scoring_throughput.markdown(benchmarks["scoring_throughput"])
    if "scoring_floor" in benchmarks:
        lines += scoring_floor.markdown(benchmarks["scoring_floor"])
    if "end_to_end_vs_peers" in benchmarks:
        lines += end_to_end_vs_peers.markdown(benchmarks["end_to_end_vs_peers"])
    if "reference_training" in benchmarks:
        lines += reference_training.markdown(benchmarks["reference_training"])
    if "lm_references" in benchmarks:
        lines += lm_references.markdown(benchmarks["lm_references"])
    if "sharding" in benchmarks:
        lines += sharding.markdown(benchmarks["sharding"])
    return lines


def _target(target: Payload | None) -> str:
    if target is None:
        return "none (only benchmarks that build their own models ran)"
    build = target["build"]
    return (
        f"tiny BERT intent classifier (`demo.intent`), trained on {build['n_members']} "
        f"members for {build['epochs']} epochs (seed {build['seed']}), audited against "
        f"{build['n_non_members']} non-members"
    )


def _device(document: Payload) -> str:
    """`cuda (NVIDIA H100 80GB HBM3, 79.1 GiB, bf16 autocast)`, or just the device."""
    info = document.get("device_info") or {}
    if not info.get("name"):
        return str(document["device"])
    return f"{document['device']} ({info['name']}, {info['memory_gib']} GiB, {info['precision']})"


def _yes(flag: Any) -> str:
    return "yes" if flag else "**no**"


def _say(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
