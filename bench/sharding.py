"""One audit with reference models on 1 worker process vs 2 (1 thread each): what sharding buys.

Part of `python -m bench.run` (`--only sharding` runs it alone); the measurement runs in a
child process (`python -m bench.sharding --task measure ...`), since it sets the service's
environment variables and starts worker processes of its own.

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

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import Payload, child_main, load_average, run_child

PG_ADMIN_URL = os.environ.get(
    "LEAKGATE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LEAKGATE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
MODULE = "bench.sharding"
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


def run(*, quick: bool) -> Payload:
    """The whole measurement in one child; its payload with the child's own costs."""
    child = run_child(MODULE, "measure", {"quick": quick}, timeout_s=3600)
    payload = dict(child.payload)
    payload["child"] = {k: v for k, v in child.as_dict().items() if k != "payload"}
    return payload


def measure(spec: Payload) -> Payload:
    """Every configuration of every round, through the deployed service path."""
    from fastapi.testclient import TestClient

    from app.client import pack_model_folder
    from app.main import create_app
    from attacks.testing import build_tiny_text_classifier

    size = sizes(spec["quick"])
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
                ("members", members, "dataset"),
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
                        spec_ = audit_spec(size, n_shards, size["epochs"])
                        measured[name] = {
                            **run_audit(client, auth, ids, spec_),
                            "load": load_average(),
                        }
                    print(f"round {round_} {name}: {measured[name]['wall_s']:.1f} s", flush=True)
                rounds.append({"order": order, **measured})
    return {
        "matmul_gflops_1_thread": matmul,
        "target": target,
        "settings": size,
        "rounds": rounds,
        "summary": summarise(rounds, size, target, matmul),
    }


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


def markdown(result: Payload) -> list[str]:
    """Lines of the results table for this benchmark."""
    size, summary = result["settings"], result["summary"]
    lines = [
        "## 4. One audit over 1 vs 2 worker processes (reference shards)",
        "",
        f"The same audit through PostgreSQL + Redis and real `leakgate worker` processes "
        f"(concurrency 1, one torch thread each): tiny BERT target "
        f"({result['target']['parameters']:,} parameters), {size['n']} members + {size['n']} "
        f"non-members + {size['n']} population, K = {size['references']} references trained "
        f"by the workers for {size['epochs']} epochs, loss + LiRA + RMIA. Workers warm; wall "
        f"from claim to report; {size['rounds']} paired round(s) in alternating order.",
        "",
        "| configuration | audit wall s (per round) | reference stage s (per round) |",
        "| --- | --- | --- |",
    ]
    names = {
        "1w-1s": "1 worker, 1 shard",
        "1w-2s": "1 worker, 2 shards",
        "2w-2s": "2 workers, 2 shards",
    }
    for key, name in names.items():
        walls = ", ".join(f"{r[key]['wall_s']:.1f}" for r in result["rounds"])
        stages = ", ".join(f"{r[key]['timings']['references']:.1f}" for r in result["rounds"])
        lines.append(f"| {name} | {walls} | {stages} |")
    stage = ", ".join(f"{r:.2f}" for r in summary["reference_stage_speedup_2_workers_paired"])
    whole = ", ".join(f"{r:.2f}" for r in summary["speedup_2_workers_paired"])
    lines += [
        "",
        f"- Reference stage, 1 worker / 2 workers, paired: {stage} (median "
        f"**{summary['reference_stage_speedup_2_workers_median']:.2f}x**).",
        f"- Whole audit, paired: {whole} (median {summary['speedup_2_workers_median']:.2f}x); "
        "the verdict's fixed cost does not shard.",
        f"- Per reference (1 worker, 1 shard): {summary['per_reference_training_s']:.2f} s "
        f"training, {summary['per_reference_scoring_s']:.3f} s scoring; "
        f"{100 * summary['training_share_of_matmul']:.0f}% and "
        f"{100 * summary['scoring_share_of_matmul']:.0f}% of this machine's fp32 matmul rate "
        f"on one thread ({result['matmul_gflops_1_thread']['median']:.0f} GFLOP/s median). "
        "`docs/capacity.md` turns these into audits per hour.",
        "- Same AUCs with 2 shards on 1 or 2 workers: "
        f"{_yes(summary['same_aucs_1w_2s_vs_2w_2s'])}.",
        "",
    ]
    return lines


def _yes(flag: Any) -> str:
    return "yes" if flag else "**no**"


if __name__ == "__main__":
    child_main({"measure": measure})
