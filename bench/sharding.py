"""One audit with reference models on 1 worker process vs 2 (1 thread each): what sharding buys.

    .venv/bin/python -m bench.sharding            # bench/results/sharding.json
    .venv/bin/python -m bench.sharding --quick    # smaller sizes, one round (same file)

The service path as deployed: PostgreSQL (a schema of its own) and Redis (a queue of its own),
real `leakgate worker` processes (concurrency 1, `LEAKGATE_TORCH_THREADS=1`), the API in this
process. Each round runs the same audit (tiny BERT target, K references trained by the worker,
loss + LiRA + RMIA) under every configuration, in alternating order, so the ratio of a round is
paired (same load, same minute):

- `1w-1s`: one worker, one shard: all K references in one vmapped run, as before sharding;
- `1w-2s`: one worker, two shards: the coordinator trains both halves one after another (the
  cost of smaller vmapped groups alone);
- `2w-2s`: two workers, two shards: one half each, at the same time.

Wall = the audit's `started_at` to `finished_at` (claimed to report written), workers already
up and warm (a one-epoch warm-up audit of the same layout runs first on fresh workers).
Per-reference costs (training and scoring seconds / K) come from the 1-shard report;
`docs/capacity.md` turns them into audits per hour.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR, load_average, machine_info, versions

PG_ADMIN_URL = os.environ.get(
    "LEAKGATE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LEAKGATE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
CONFIGS = {"1w-1s": (1, 1), "1w-2s": (1, 2), "2w-2s": (2, 2)}
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
LABELS = ["balance", "transfer", "card", "loan"]


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"n": 100, "references": 4, "epochs": 10, "rounds": 1, "hidden": 32, "layers": 2}
    return {"n": 200, "references": 8, "epochs": 10, "rounds": 2, "hidden": 64, "layers": 2}


def audit_spec(size: dict[str, Any], shards: int, epochs: int) -> dict[str, Any]:
    """LiRA and RMIA over K trained references; few bootstrap samples, so that the verdict's
    fixed cost does not hide the references' (it does not depend on them)."""
    return {
        "attacks": ["loss", "lira", "rmia"],
        "references": {"count": size["references"], "shards": shards, "train": {"epochs": epochs}},
        "options": {"n_bootstrap": 100},
    }


def _dataset(n: int, offset: int, seed: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS, size=rng.integers(3, 12)))
        rows.append({"text": f"{words} {i + offset}", "label": LABELS[(i + offset) % 4]})
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@contextmanager
def service(home: Path) -> Iterator[dict[str, str]]:
    """A migrated PostgreSQL schema and a Redis queue of this run; dropped afterwards."""
    from sqlalchemy import create_engine, text

    run = uuid.uuid4().hex[:8]
    schema = f"bench_{run}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    env = {
        "LEAKGATE_ENV": "test",
        "LEAKGATE_HOME": str(home),
        "LEAKGATE_DATABASE_URL": f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}",
        "LEAKGATE_BROKER_URL": REDIS_URL,
        "LEAKGATE_QUEUE_NAME": f"leakgate-bench-{run}",
        "LEAKGATE_TORCH_THREADS": "1",
        "LEAKGATE_BOOTSTRAP_SAMPLES": "200",
    }
    os.environ.update(env)
    from app.core.migrate import upgrade

    upgrade()
    try:
        yield env
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def workers(env: dict[str, str], n: int) -> Iterator[None]:
    """n worker processes (concurrency 1), started and answering a ping before yielding."""
    from app.core.queue import get_celery

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--loglevel", "WARNING"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(n)
    ]
    try:
        deadline = time.monotonic() + 300
        while len(get_celery().control.ping(timeout=1.0)) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} workers did not start")
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=120)


def matmul_gflops(threads: int = 1, size: int = 1024, repeats: int = 7) -> dict[str, float]:
    """This machine's fp32 matmul rate on `threads` threads (the workers' setting): the floor
    against which per-reference costs are extrapolated to larger models."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b  # warm-up
        rates = []
        for _ in range(repeats):
            began = time.perf_counter()
            a @ b
            rates.append(2 * size**3 / (time.perf_counter() - began) / 1e9)
    finally:
        torch.set_num_threads(saved)
    return {"median": statistics.median(rates), "best": max(rates)}


def model_size(folder: Path, texts: list[str]) -> dict[str, float]:
    """The target's parameter count and mean tokens per audited text: with them, FLOPs per
    text are about 2 x parameters x tokens to score and 6 x to train on."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokens = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_text": statistics.mean(tokens),
    }


def run_audit(client, auth: dict[str, str], ids: dict[str, str], spec: dict) -> dict[str, Any]:
    from sqlalchemy import select

    from app.audits.models import Audit
    from app.core.db import session_scope

    response = client.post(
        "/v1/audits", json={"model": {"name": "bench"}, **ids, **spec}, headers=auth
    )
    assert response.status_code == 202, response.text
    audit_id = response.json()["id"]
    while True:
        with session_scope() as db_session:
            audit = db_session.scalars(select(Audit).where(Audit.id == audit_id)).one()
            if audit.state in ("succeeded", "failed", "cancelled"):
                assert audit.state == "succeeded", audit.error
                assert audit.started_at and audit.finished_at
                wall = (audit.finished_at - audit.started_at).total_seconds()
                break
        time.sleep(0.2)
    report = client.get(f"/v1/audits/{audit_id}/report", headers=auth).json()
    refs = report["reference_models"]
    return {
        "wall_s": wall,
        "training_s": refs["training_seconds"],
        "scoring_s": refs["scoring_seconds"],
        "timings": report["timings"],
        "aucs": {a["name"]: a["auc"] for a in report["attacks"]},
        "shards": refs["shards"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sharding", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--summarise", action="store_true", help="only redo the summary")
    args = parser.parse_args(argv)
    size = sizes(args.quick)
    if args.rounds:
        size["rounds"] = args.rounds
    if args.summarise:  # recompute the summary of a results file (e.g. after adding a ratio)
        path = RESULTS_DIR / "sharding.json"
        result = json.loads(path.read_text())
        result["summary"] = summarise(
            result["rounds"], result["settings"], result["target"], result["matmul_gflops_1_thread"]
        )
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        return 0
    from fastapi.testclient import TestClient

    from app.client import pack_model_folder
    from app.main import create_app
    from attacks.testing import build_tiny_text_classifier

    started = datetime.now(UTC)
    load_before = load_average()
    matmul = matmul_gflops()
    with tempfile.TemporaryDirectory() as tmp, service(Path(tmp) / "home") as env:
        folder = build_tiny_text_classifier(
            Path(tmp) / "target", WORDS, LABELS, hidden_size=size["hidden"], layers=size["layers"]
        )
        members = _dataset(size["n"], 0, 0)
        target = model_size(folder, [json.loads(line)["text"] for line in members.splitlines()])
        model = pack_model_folder(folder, Path(tmp) / "target.tar.gz").read_bytes()
        rounds: list[dict[str, Any]] = []
        with TestClient(create_app(run_sweeper=False)) as client:
            auth = {"Authorization": f"Bearer {_new_key()}"}
            ids = {}
            for field, body, kind in (
                ("target", model, "model"),
                ("members", _dataset(size["n"], 0, 0), "dataset"),
                ("non_members", _dataset(size["n"], 10_000, 1), "dataset"),
                ("population", _dataset(size["n"], 20_000, 2), "dataset"),
            ):
                response = client.post(
                    "/v1/artifacts",
                    params={
                        "kind": kind,
                        "filename": f"{field}.{'tar.gz' if kind == 'model' else 'jsonl'}",
                    },
                    content=body,
                    headers=auth,
                )
                assert response.status_code == 201, response.text
                ids[field] = response.json()["id"]
            for round_ in range(size["rounds"]):
                order = list(CONFIGS) if round_ % 2 == 0 else list(CONFIGS)[::-1]
                measured: dict[str, Any] = {}
                for name in order:
                    n_workers, n_shards = CONFIGS[name]
                    with workers(env, n_workers):
                        # Warm-up, not measured: every worker process imports torch and
                        # transformers and loads the target once (a shard per worker).
                        run_audit(client, auth, ids, audit_spec(size, n_shards, 1))
                        spec = audit_spec(size, n_shards, size["epochs"])
                        measured[name] = {
                            **run_audit(client, auth, ids, spec),
                            "load": load_average(),
                        }
                    print(f"round {round_} {name}: {measured[name]['wall_s']:.1f} s", flush=True)
                rounds.append({"order": order, **measured})
    result = {
        "benchmark": "sharding",
        "quick": args.quick,
        "command": "python -m bench.sharding" + (" --quick" if args.quick else ""),
        "started_at": started.isoformat(),
        "machine": machine_info(),
        "load_before": load_before,
        "matmul_gflops_1_thread": matmul,
        "target": target,
        "versions": versions(),
        "settings": size,
        "rounds": rounds,
        "summary": summarise(rounds, size, target, matmul),
    }
    # One file either way (`quick` says which): on a machine too loaded for the full size, the
    # quick run is the one committed.
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "sharding.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


def _new_key() -> str:
    from app.core.db import session_scope
    from app.tenants.service import create_key

    with session_scope() as db_session:
        return create_key(db_session=db_session, tenant_name="bench")


def summarise(
    rounds: list[dict[str, Any]],
    size: dict[str, Any],
    target: dict[str, float],
    matmul: dict[str, float],
) -> dict[str, Any]:
    """Paired ratios per round (1 worker's wall / 2 workers'), their median, and the
    per-reference costs of the 1-shard runs, also as a share of the matmul rate."""
    k = size["references"]
    speedup = [r["1w-1s"]["wall_s"] / r["2w-2s"]["wall_s"] for r in rounds]
    # The reference stage alone (the part sharding splits), without the verdict's fixed cost.
    stage = [
        r["1w-1s"]["timings"]["references"] / r["2w-2s"]["timings"]["references"] for r in rounds
    ]
    group_cost = [r["1w-2s"]["wall_s"] / r["1w-1s"]["wall_s"] for r in rounds]
    one = [r["1w-1s"] for r in rounds]
    train_s = statistics.median(o["training_s"] / k for o in one)
    score_s = statistics.median(o["scoring_s"] / k for o in one)
    n_texts = 3 * size["n"]  # members, non-members, population
    # Online: each reference trains on half of all texts, `epochs` times; scores all of them.
    flops_train = (
        6 * target["parameters"] * target["tokens_per_text"] * n_texts / 2 * size["epochs"]
    )
    flops_score = 2 * target["parameters"] * target["tokens_per_text"] * n_texts
    return {
        "speedup_2_workers_paired": speedup,
        "speedup_2_workers_median": statistics.median(speedup),
        "reference_stage_speedup_2_workers_paired": stage,
        "reference_stage_speedup_2_workers_median": statistics.median(stage),
        "two_shards_on_one_worker_vs_one_shard_paired": group_cost,
        "wall_s_median": {
            name: statistics.median(r[name]["wall_s"] for r in rounds) for name in CONFIGS
        },
        "per_reference_training_s": train_s,
        "per_reference_scoring_s": score_s,
        "training_share_of_matmul": flops_train / train_s / (matmul["median"] * 1e9),
        "scoring_share_of_matmul": flops_score / score_s / (matmul["median"] * 1e9),
        "target_scoring_s": statistics.median(o["timings"].get("score", 0.0) for o in one),
        "same_aucs_1w_2s_vs_2w_2s": all(r["1w-2s"]["aucs"] == r["2w-2s"]["aucs"] for r in rounds),
    }


if __name__ == "__main__":
    raise SystemExit(main())
