"""One audit's reference models over two real worker processes (PostgreSQL + Redis): the
sharded audit gives the report the unsharded one gives, shard by shard on both workers."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.env import own_queue_on_postgres
from tests.utils.factories import LABELS, TEXTS, dataset_bytes, new_key, tiny_model_archive, upload
from tests.utils.worker import (
    Processes,
    api_client,
    audit_rows,
    submit_audits,
    wait_final,
    wait_stage,
)

pytestmark = pytest.mark.slow

# Every process on one thread: float reductions then add up in the same order everywhere.
# Recovery made short: a heartbeat every 0.5 s, presumed lost after 3 s.
ENV = {
    "LEAKGATE_TORCH_THREADS": "1",
    "LEAKGATE_HEARTBEAT_INTERVAL_S": "0.5",
    "LEAKGATE_STALE_AFTER_S": "3",
}
SPEC = {
    "attacks": ["loss", "lira", "rmia"],
    "references": {"count": 4, "train": {"epochs": 3}},
    "options": {"n_bootstrap": 200},
}
# Volatile or bookkeeping fields: wall times, dates, versions, and the layout itself.
SKIP = {"timings", "created_at", "training_seconds", "scoring_seconds", "shards"}


@pytest.fixture
def env(pg_schema, tmp_path) -> Iterator[dict[str, str]]:
    with own_queue_on_postgres(
        pg_schema, tmp_path / "home", queue="leakgate-shards", extra=ENV
    ) as values:
        yield values


def _without_dropout(tmp: Path) -> bytes:
    """The tiny classifier with dropout zeroed: references trained from its config are then
    deterministic given their seeds and batches, whichever shard trains them."""
    from app.client import pack_model_folder
    from attacks.testing import build_tiny_text_classifier

    folder = build_tiny_text_classifier(tmp / "tiny", TEXTS, LABELS)
    config = json.loads((folder / "config.json").read_text())
    config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = 0.0
    (folder / "config.json").write_text(json.dumps(config))
    return pack_model_folder(folder, tmp / "tiny.tar.gz").read_bytes()


def _numbers(body, path: str = "") -> dict[str, object]:
    """The report as path -> leaf value, without the fields that may differ between runs."""
    if isinstance(body, dict):
        out: dict[str, object] = {}
        for key, value in body.items():
            if key not in SKIP:
                out.update(_numbers(value, f"{path}.{key}"))
        return out
    if isinstance(body, list):
        out = {}
        for i, value in enumerate(body):
            out.update(_numbers(value, f"{path}[{i}]"))
        return out
    return {path: body}


def _shard_rows(audit_id: str) -> list[tuple[int, str, str | None, int]]:
    from sqlalchemy import select

    from app.audits.models import AuditShard
    from app.core.db import session_scope

    with session_scope() as db_session:
        rows = db_session.scalars(
            select(AuditShard).where(AuditShard.audit_id == audit_id).order_by(AuditShard.shard)
        ).all()
        return [(r.shard, r.state, r.worker, r.attempts) for r in rows]


def _run(client, auth, ids, spec) -> tuple[str, dict]:
    [audit_id] = submit_audits(client, auth, ids, 1, **spec)
    rows = wait_final([audit_id], timeout_s=400)
    assert rows[audit_id]["state"] == "succeeded", rows
    response = client.get(f"/v1/audits/{audit_id}/report", headers=auth)
    assert response.status_code == 200, response.text
    return audit_id, response.json()


def _upload_all(client, auth, model: bytes) -> dict[str, str]:
    ids = {}
    for field, body, kind, name in (
        ("target", model, "model", "tiny.tar.gz"),
        ("members", dataset_bytes(40), "dataset", "members.jsonl"),
        ("non_members", dataset_bytes(40, offset=100), "dataset", "non_members.jsonl"),
        ("population", dataset_bytes(40, offset=200), "dataset", "population.jsonl"),
    ):
        response = upload(client, auth, body, kind, name)
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    return ids


def test_two_shards_on_two_workers_give_the_one_shard_report(procs, env, tmp_path):
    """Dropout off (the one draw a shard's references share): reference k trains the same in
    any shard, so 2 shards over 2 workers give the 1-shard report, to float rounding."""
    with api_client(env) as client:
        auth = {"Authorization": f"Bearer {new_key()}"}
        ids = _upload_all(client, auth, _without_dropout(tmp_path))
        procs.worker()
        procs.worker()
        _wait_workers(2)
        one_id, one = _run(client, auth, ids, SPEC)
        two_id, two = _run(
            client, auth, ids, {**SPEC, "references": {**SPEC["references"], "shards": 2}}
        )
    assert _shard_rows(one_id) == []  # 1 shard: today's path, no shard rows
    shard_rows = _shard_rows(two_id)
    assert [(s, state, attempts) for s, state, _, attempts in shard_rows] == [
        (0, "done", 1),
        (1, "done", 1),
    ]
    assert len({worker for _, _, worker, _ in shard_rows}) == 2  # both workers trained one
    assert one["reference_models"]["shards"] == 1 and two["reference_models"]["shards"] == 2
    a, b = _numbers(one), _numbers(two)
    assert a.keys() == b.keys()
    for path, value in a.items():
        other = b[path]
        if isinstance(value, float) and isinstance(other, float):
            assert math.isclose(value, other, rel_tol=1e-6, abs_tol=1e-9), (path, value, other)
        else:
            assert value == other, (path, value, other)
    aucs = {r["name"]: r["auc"] for r in two["attacks"]}
    print(f"1 shard vs 2 shards on 2 workers, AUCs: {aucs}")


def test_a_sharded_audit_gives_the_same_report_fanned_out_or_in_one_task(procs, env, tmp_path):
    """With dropout, the layout is part of the seeds: the same 2-shard audit run by two
    workers and by one worker alone (fan-out off) gives the same report, exactly."""
    spec = {**SPEC, "references": {**SPEC["references"], "shards": 2}}
    with api_client(env) as client:
        auth = {"Authorization": f"Bearer {new_key()}"}
        ids = _upload_all(client, auth, tiny_model_archive(tmp_path))
        procs.worker()
        procs.worker()
        _wait_workers(2)  # both consuming, or the first could run both shards itself
        spread_id, spread = _run(client, auth, ids, spec)
        procs.stop_workers()
        procs.worker(LEAKGATE_REFERENCE_FANOUT="false")
        alone_id, alone = _run(client, auth, ids, spec)
    assert len({worker for _, _, worker, _ in _shard_rows(spread_id)}) == 2, _shard_rows(spread_id)
    assert len({worker for _, _, worker, _ in _shard_rows(alone_id)}) == 1
    assert _numbers(spread) == _numbers(alone)


# Long enough to be caught mid-training: many epochs of the tiny model.
LONG = {**SPEC, "references": {"count": 8, "shards": 2, "train": {"epochs": 200}}}


def _wait_shards(audit_id: str, matches, timeout_s: float = 120) -> list:
    deadline = time.monotonic() + timeout_s
    rows: list = []
    while time.monotonic() < deadline:
        rows = _shard_rows(audit_id)
        if rows and matches(rows):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"shards of {audit_id} never got there: {rows}")


def _results_dir(audit_id: str):
    from app.audits.shards import results_dir
    from app.core.config import get_settings

    return results_dir(get_settings(), audit_id)


def test_cancel_stops_every_shard(procs, env, tmp_path):
    with api_client(env) as client:
        auth = {"Authorization": f"Bearer {new_key()}"}
        ids = _upload_all(client, auth, tiny_model_archive(tmp_path))
        procs.worker()
        procs.worker()
        [audit_id] = submit_audits(client, auth, ids, 1, **LONG)
        # The audit's progress and stage follow its shards.
        wait_stage(audit_id, lambda stage: stage.startswith("reference shards: 0/2"))
        _wait_shards(audit_id, lambda rows: all(r[1] == "running" for r in rows))
        response = client.post(f"/v1/audits/{audit_id}/cancel", headers=auth)
        assert response.status_code == 202, response.text
        rows = wait_final([audit_id], timeout_s=120)
    assert rows[audit_id]["state"] == "cancelled", rows
    assert [state for _, state, _, _ in _shard_rows(audit_id)] == ["cancelled", "cancelled"]
    assert not _results_dir(audit_id).exists()


def _wait_workers(n: int, timeout_s: float = 120) -> None:
    """Until n worker processes answer a ping (started, connected, consuming)."""
    from app.core.queue import get_celery

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(get_celery().control.ping(timeout=1.0)) >= n:
            return
    raise AssertionError(f"{n} workers did not start in {timeout_s} s")


def test_a_lost_shard_is_retried_alone(procs, env, tmp_path):
    """The worker running the coordinator's other shard is killed mid-training: once its
    heartbeat is stale, that shard alone is claimed again and run; the rest runs once."""
    spec = {
        **LONG,
        "references": {"count": 4, "shards": 2, "train": {"epochs": 100, "batch_size": 4}},
    }
    with api_client(env) as client:
        auth = {"Authorization": f"Bearer {new_key()}"}
        ids = _upload_all(client, auth, tiny_model_archive(tmp_path))
        workers = [procs.worker(), procs.worker()]
        _wait_workers(2)
        [audit_id] = submit_audits(client, auth, ids, 1, **spec)
        rows = _wait_shards(audit_id, lambda rows: all(r[1] == "running" for r in rows))
        coordinator = audit_rows([audit_id])[audit_id]["worker"]
        [(lost, _, lost_worker, _)] = [r for r in rows if r[2] != coordinator]
        # Worker names are host:pid of the prefork child; kill the tree that holds it.
        [doomed] = [p for p in workers if _holds(p.pid, int(lost_worker.rsplit(":", 1)[1]))]
        Processes.kill9(doomed)
        final = wait_final([audit_id], timeout_s=300)
    assert final[audit_id]["state"] == "succeeded" and final[audit_id]["attempts"] == 1, final
    after = _shard_rows(audit_id)
    assert [(s, state, attempts) for s, state, _, attempts in after] == [
        (s, "done", 2 if s == lost else 1) for s in (0, 1)
    ]
    assert after[lost][2] == coordinator  # the coordinator ran it again itself
    assert not _results_dir(audit_id).exists()


def _holds(parent: int, child: int) -> bool:
    """Whether `child` is `parent` or one of its children (Celery's prefork pool)."""
    if parent == child:
        return True
    try:
        with open(f"/proc/{child}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1]) == parent
    except OSError:
        return False
