"""The fault suite: real worker and sweeper processes on a PostgreSQL and a Redis of the suite's
own, killed and restarted under audits. Whatever happens, every audit ends succeeded or failed
with a message, none is lost, none has two reports, and no webhook is delivered twice.

Recovery settings are short (heartbeat 0.5 s, stale after 3 s); the measured takeover times are
printed (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from sqlalchemy import text

from tests.faults.servers import OwnPostgres, OwnRedis
from tests.utils.env import reset_caches
from tests.utils.factories import dataset_bytes, new_key, tiny_model_archive, upload
from tests.utils.worker import (
    FINAL,
    Processes,
    api_client,
    audit_rows,
    kill_at_stage,
    submit_audits,
    wait_final,
    wait_stage,
)

pytestmark = pytest.mark.slow

FAST_RECOVERY = {
    "LEAKGATE_HEARTBEAT_INTERVAL_S": "0.5",
    "LEAKGATE_STALE_AFTER_S": "3",
    "LEAKGATE_SWEEP_INTERVAL_S": "0.5",
    "LEAKGATE_SWEEP_AFTER_S": "3",
    "LEAKGATE_WEBHOOK_BACKOFF_S": "0.5",
    "LEAKGATE_BOOTSTRAP_SAMPLES": "200",
}
# One forward pass per record and a long bootstrap: scoring and attacks each last long enough
# (a second or more) to be caught and killed in.
KILLABLE = {"options": {"batch_size": 1, "n_bootstrap": 20000}}


class Receiver(BaseHTTPRequestHandler):
    """Counts webhook deliveries per audit (the delivery header is `<audit id>.<state>`)."""

    deliveries: ClassVar[Counter[str]] = Counter()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.deliveries[self.headers["X-Leakgate-Delivery"].split(".")[0]] += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@dataclass
class Stack:
    env: dict[str, str]
    pg: OwnPostgres
    redis: OwnRedis
    procs: Processes
    client: object
    auth: dict[str, str]
    ids: dict[str, str]
    callback_url: str
    audits: list[str] = field(default_factory=list)
    recovery_s: dict[str, float] = field(default_factory=dict)

    def submit(self, n: int = 1, **spec) -> list[str]:
        ids = submit_audits(
            self.client, self.auth, self.ids, n, callback_url=self.callback_url, **spec
        )
        self.audits += ids
        return ids


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    pg, redis = OwnPostgres(), OwnRedis()
    pg.start()
    redis.start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path_factory.mktemp("home-faults")
    env = {
        "LEAKGATE_ENV": "test",
        "LEAKGATE_HOME": str(home),
        "LEAKGATE_DATABASE_URL": pg.url,
        "LEAKGATE_BROKER_URL": redis.url,
        "LEAKGATE_QUEUE_NAME": f"leakgate-faults-{uuid.uuid4().hex[:6]}",
        **FAST_RECOVERY,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_caches()
    procs = Processes(env)
    try:
        from app.core.migrate import upgrade

        upgrade()
        with api_client(env) as client:
            auth = {"Authorization": f"Bearer {new_key()}"}
            assert client.post("/v1/webhook-secret", headers=auth).status_code == 201
            model = tiny_model_archive(home)
            ids = {}
            for name, body, kind, filename in (
                ("target", model, "model", "tiny.tar.gz"),
                ("members", dataset_bytes(150), "dataset", "members.jsonl"),
                ("non_members", dataset_bytes(150, offset=1000), "dataset", "non.jsonl"),
            ):
                response = upload(client, auth, body, kind, filename)
                assert response.status_code == 201, response.text
                ids[name] = response.json()["id"]
            procs.sweeper()
            url = f"http://127.0.0.1:{server.server_address[1]}/hook"
            yield Stack(env, pg, redis, procs, client, auth, ids, url)
    finally:
        procs.close()
        server.shutdown()
        redis.stop()
        pg.remove()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_caches()


def _webhooks_settled(stack: Stack, timeout_s: float = 60) -> None:
    """Wait until every ended audit's webhook arrived (before the broker is taken down: a
    delivery still queued in a Redis that keeps nothing would be lost with it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ended = [a for a, r in audit_rows(stack.audits).items() if r["state"] in FINAL]
        if all(Receiver.deliveries[a] for a in ended):
            return
        time.sleep(0.2)
    raise AssertionError("webhooks of ended audits did not arrive")


def _taken_over(stack: Stack, audit_id: str, dead_worker: str, killed_at: float) -> float:
    """Seconds from the kill until another worker holds the audit."""
    while time.monotonic() - killed_at < 180:
        row = audit_rows([audit_id])[audit_id]
        if row["worker"] != dead_worker or row["state"] in FINAL:
            return time.monotonic() - killed_at
        time.sleep(0.1)
    raise AssertionError(f"audit {audit_id} was not taken over")


def _worker_of(audit_id: str) -> str:
    return audit_rows([audit_id])[audit_id]["worker"]


def test_kill_9_while_scoring_then_during_attacks(stack):
    """Each kill takes a worker's whole process tree; a fresh worker takes the audit over."""
    victim = stack.procs.worker()
    for stage, matches in (
        ("scoring", lambda s: s == "scoring audited records"),
        ("attacks", lambda s: s == "running attacks" or s.startswith("attack ")),
    ):
        [audit_id] = stack.submit(**KILLABLE)
        seen = kill_at_stage(victim, audit_id, matches)
        killed_at, dead = time.monotonic(), _worker_of(audit_id)
        victim = stack.procs.worker()  # recovers this audit, then is the next one's victim
        stack.recovery_s[stage] = round(_taken_over(stack, audit_id, dead, killed_at), 1)
        row = wait_final([audit_id])[audit_id]
        assert row["state"] == "succeeded" and row["attempts"] == 2, (seen, row)
        assert row["reports"] == 1


def test_kill_9_while_writing_the_report(stack):
    """The report's INSERT is held by a table lock until the worker is killed inside its final
    transaction: nothing of it is committed, and the next worker writes the one report."""
    from app.core.db import get_engine

    stack.procs.stop_workers()  # the victim must be the only worker
    victim = stack.procs.worker()
    with get_engine().connect() as conn:
        conn.execute(text("LOCK TABLE reports IN ACCESS EXCLUSIVE MODE"))
        [audit_id] = stack.submit()
        # Polled on the lock holder's own connection: any other reader of `reports` would wait.
        deadline, stage = time.monotonic() + 120, None
        while stage != "writing report" and time.monotonic() < deadline:
            time.sleep(0.1)
            query = text("SELECT stage, worker FROM audits WHERE id = :id")
            stage, dead = conn.execute(query, {"id": audit_id}).one()
        assert stage == "writing report"
        time.sleep(1)  # the worker is now waiting on the lock, inside its transaction
        Processes.kill9(victim)
        killed_at = time.monotonic()
        conn.rollback()
    stack.procs.worker()
    stack.recovery_s["writing"] = round(_taken_over(stack, audit_id, dead, killed_at), 1)
    row = wait_final([audit_id])[audit_id]
    assert row["state"] == "succeeded" and row["attempts"] == 2 and row["reports"] == 1


def test_redis_restart_with_audits_queued(stack):
    """No worker runs while three audits wait in a broker that then restarts empty; the sweeper
    sends them again."""
    wait_final(stack.audits)
    _webhooks_settled(stack)
    stack.procs.stop_workers()
    audit_ids = stack.submit(3)
    stack.redis.stop()
    stack.redis.start()
    stack.procs.worker()
    rows = wait_final(audit_ids)
    assert all(r["state"] == "succeeded" and r["reports"] == 1 for r in rows.values()), rows


def test_broker_down_at_submit(stack):
    """Submissions while Redis is down are accepted (the row is committed first) and run once
    it is back."""
    _webhooks_settled(stack)
    stack.redis.stop()
    audit_ids = stack.submit(2)
    assert all(r["state"] == "queued" for r in audit_rows(audit_ids).values())
    stack.redis.start()
    rows = wait_final(audit_ids)
    assert all(r["state"] == "succeeded" and r["reports"] == 1 for r in rows.values()), rows


def test_postgres_restart_mid_audit(stack):
    """The database restarts under a running audit (and under the sweeper and the heartbeat):
    the audit is retried or carries on, and ends with one report."""
    [audit_id] = stack.submit(**KILLABLE)
    wait_stage(audit_id, lambda s: s == "scoring audited records")
    stack.pg.stop()
    time.sleep(2)
    stack.pg.start()
    row = wait_final([audit_id])[audit_id]
    assert row["state"] == "succeeded" and row["reports"] == 1, row


def test_disk_full_during_upload(stack, tmp_path):
    """An upload that fills the storage volume (a real 256 KiB tmpfs) gets 507 with a message
    and leaves nothing behind; a small upload still fits afterwards."""
    volume = tmp_path / "volume"
    volume.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(volume)]
    if subprocess.run(mount, check=False).returncode != 0:
        pytest.fail("this test mounts a tmpfs, which needs root")
    # No free-space reserve: the write itself must hit ENOSPC.
    full = {"LEAKGATE_STORAGE_DIR": str(volume), "LEAKGATE_STORAGE_RESERVE_BYTES": "0"}
    try:
        with api_client({**stack.env, **full}) as client:
            big = dataset_bytes(6000)
            assert len(big) > 256 * 1024
            response = upload(client, stack.auth, big, "dataset", "big.jsonl")
            assert response.status_code == 507, response.text
            assert "full" in response.text or "space" in response.text
            assert not any((volume / "tmp").iterdir())
            listed = client.get("/v1/artifacts", headers=stack.auth).json()["items"]
            assert "big.jsonl" not in json.dumps(listed)
            small = upload(client, stack.auth, dataset_bytes(20), "dataset", "small.jsonl")
            assert small.status_code == 201, small.text
    finally:
        for key in full:
            os.environ.pop(key, None)
        reset_caches()
        subprocess.run(["umount", str(volume)], check=True)


def test_no_audit_lost_no_second_report_no_second_webhook(stack):
    """The suite's invariant, over every audit the tests above submitted."""
    rows = wait_final(stack.audits, timeout_s=180)
    lost = [a for a in stack.audits if a not in rows or rows[a]["state"] not in FINAL]
    print(
        f"fault suite: {len(stack.audits)} audits, {len(lost)} lost; takeover after kill -9 "
        f"(s, stale after 3 s): {stack.recovery_s}"
    )
    assert not lost
    for row in rows.values():
        assert row["state"] in ("succeeded", "failed"), row
        assert row["reports"] == (1 if row["state"] == "succeeded" else 0), row
        if row["state"] == "failed":
            assert row["error"], row
    _webhooks_settled(stack)
    time.sleep(2)  # a duplicate would arrive after the first
    assert {a: Receiver.deliveries[a] for a in stack.audits} == dict.fromkeys(stack.audits, 1)
