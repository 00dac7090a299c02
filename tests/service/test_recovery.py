"""Recovery with real worker processes on PostgreSQL + Redis: two audits at once in one worker,
the sweeper process re-sending what the broker lost, the stale-heartbeat takeover after a
kill -9, and the give-up after the last attempt."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.utils.env import own_queue_on_postgres
from tests.utils.factories import dataset_bytes, new_key, upload
from tests.utils.worker import (
    api_client,
    audit_rows,
    kill_at_stage,
    submit_audits,
    wait_final,
)

pytestmark = pytest.mark.slow

# Short on purpose: a heartbeat every 0.5 s, presumed dead after 3 s, swept every 0.5 s.
FAST_RECOVERY = {
    "LEAKGATE_HEARTBEAT_INTERVAL_S": "0.5",
    "LEAKGATE_STALE_AFTER_S": "3",
    "LEAKGATE_SWEEP_INTERVAL_S": "0.5",
    "LEAKGATE_SWEEP_AFTER_S": "3",
}


@pytest.fixture
def env(pg_schema, tmp_path) -> Iterator[dict[str, str]]:
    with own_queue_on_postgres(
        pg_schema, tmp_path / "home", queue="leakgate-recovery", extra=FAST_RECOVERY
    ) as values:
        yield values


@pytest.fixture
def submitted(env, model_body):
    """An API client, a tenant's auth header and uploaded artifacts to audit."""
    with api_client(env) as client:
        auth = {"Authorization": f"Bearer {new_key()}"}
        ids = {}
        for field, body, kind, name in (
            ("target", model_body, "model", "tiny.tar.gz"),
            ("members", dataset_bytes(40), "dataset", "members.jsonl"),
            ("non_members", dataset_bytes(40, offset=100), "dataset", "non_members.jsonl"),
            ("population", dataset_bytes(40, offset=200), "dataset", "population.jsonl"),
        ):
            response = upload(client, auth, body, kind, name)
            assert response.status_code == 201, response.text
            ids[field] = response.json()["id"]
        yield client, auth, ids


def _plain(ids: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in ids.items() if k != "population"}


# References trained by the worker: a few seconds of work, long enough to be killed during.
SLOW_SPEC = {"attacks": ["loss", "lira"], "references": {"count": 2, "train": {"epochs": 30}}}


def test_a_dozen_audits_in_two_child_processes(procs, submitted):
    """Each prefork child has its own database connections: with --concurrency 2 every audit
    succeeds once (a shared connection failed some of them with protocol errors)."""
    client, auth, ids = submitted
    audit_ids = submit_audits(client, auth, _plain(ids), 12)
    procs.worker(concurrency=2)
    rows = wait_final(audit_ids, timeout_s=400)
    assert {r["state"] for r in rows.values()} == {"succeeded"}, rows
    assert all(r["reports"] == 1 and r["attempts"] == 1 for r in rows.values()), rows
    # Both children ran audits (the worker name is host:pid of the child process).
    assert len({r["worker"] for r in rows.values()}) == 2


def test_sweeper_process_resends_an_audit_the_broker_lost(procs, submitted):
    from app.core.config import get_settings
    from workers.celery_app import get_celery

    client, auth, ids = submitted
    [audit_id] = submit_audits(client, auth, _plain(ids), 1)
    # The message is lost: the queue is emptied before any worker could take it.
    with get_celery().connection_for_write() as conn:
        assert conn.default_channel.queue_purge(get_settings().queue_name) == 1
    procs.worker()
    procs.sweeper()
    rows = wait_final([audit_id], timeout_s=300)
    assert rows[audit_id]["state"] == "succeeded", rows
    assert rows[audit_id]["reports"] == 1 and rows[audit_id]["attempts"] == 1


def test_stale_heartbeat_takeover_after_kill_9(procs, submitted):
    """A worker killed mid-audit (no chance to clean up): once its heartbeat is stale, the
    sweeper hands the audit to a second worker, which finishes it with one report."""
    client, auth, ids = submitted
    [audit_id] = submit_audits(client, auth, ids, 1, **SLOW_SPEC)
    first = procs.worker()
    procs.sweeper()
    stage = kill_at_stage(first, audit_id, lambda s: "training" in s)
    killed_at = time.monotonic()
    dead_worker = audit_rows([audit_id])[audit_id]["worker"]
    procs.worker()
    resumed_after = None
    while resumed_after is None and time.monotonic() - killed_at < 300:
        row = audit_rows([audit_id])[audit_id]
        if row["worker"] != dead_worker:
            resumed_after = time.monotonic() - killed_at
        time.sleep(0.1)
    stale = os.environ.get("LEAKGATE_STALE_AFTER_S", "the default")
    print(f"killed during {stage!r}; taken over after {resumed_after:.1f} s (stale: {stale})")
    rows = wait_final([audit_id], timeout_s=300)
    row = rows[audit_id]
    assert row["state"] == "succeeded", row
    assert row["attempts"] == 2 and row["reports"] == 1
    assert row["worker"] != dead_worker


def test_gives_up_after_the_last_attempt(procs, submitted):
    """With one attempt allowed, a worker lost mid-audit ends it as failed, with a message,
    rather than leaving it running for ever."""
    client, auth, ids = submitted
    [audit_id] = submit_audits(client, auth, ids, 1, **SLOW_SPEC)
    worker = procs.worker(LEAKGATE_MAX_ATTEMPTS="1")
    procs.sweeper(LEAKGATE_MAX_ATTEMPTS="1")
    kill_at_stage(worker, audit_id, lambda s: "training" in s)
    rows = wait_final([audit_id], timeout_s=120)
    row = rows[audit_id]
    assert row["state"] == "failed" and row["reports"] == 0
    assert row["error"] == "gave up after 1 attempts: the worker was lost each time"
