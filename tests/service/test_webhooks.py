"""A real worker on PostgreSQL and Redis gates audits and POSTs signed webhooks to a real
local HTTP server; a failing endpoint is retried with backoff and every attempt is recorded."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import ClassVar

import pytest

from app.webhooks import signing
from tests.utils.factories import dataset_bytes, new_key, upload
from tests.utils.worker import api_client, worker_service

pytestmark = pytest.mark.slow

# Statuses each receiver path answers, in order; the last one repeats.
SCRIPTS = {"/ok": [200], "/flaky": [500, 502, 200], "/down": [503]}


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[dict[str, list[tuple[dict[str, str], bytes]]]] = defaultdict(list)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        calls = self.received[self.path]
        calls.append((dict(self.headers), body))
        script = SCRIPTS[self.path]
        self.send_response(script[min(len(calls), len(script)) - 1])
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def service(pg_schema, tmp_path_factory):
    """PostgreSQL + Redis, migrated, one real worker; quick webhook backoff for the test."""
    quick = {"LEAKGATE_WEBHOOK_BACKOFF_S": "0.3", "LEAKGATE_WEBHOOK_MAX_ATTEMPTS": "3"}
    with worker_service(pg_schema, tmp_path_factory.mktemp("home-hooks"), quick) as env:
        yield env


@pytest.fixture
def client(service):
    with api_client(service) as test_client:
        yield test_client


@pytest.fixture
def tenant(client, model_body) -> dict:
    """A tenant with a webhook secret and a tiny model and its data uploaded."""
    auth = {"Authorization": f"Bearer {new_key()}"}
    secret = client.post("/v1/webhook-secret", headers=auth).json()["secret"]
    ids = {}
    for field, body, kind, name in (
        ("target", model_body, "model", "tiny.tar.gz"),
        ("members", dataset_bytes(40), "dataset", "members.jsonl"),
        ("non_members", dataset_bytes(40, offset=100), "dataset", "non_members.jsonl"),
    ):
        response = upload(client, auth, body, kind, name)
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    return {"auth": auth, "secret": secret, "ids": ids}


def submit(client, tenant, name: str, **extra) -> str:
    spec = {"model": {"name": name}, **tenant["ids"], **extra}
    response = client.post("/v1/audits", json=spec, headers=tenant["auth"])
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_for(predicate, timeout_s: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def deliveries(client, tenant, audit_id: str, count: int) -> list[dict]:
    path = f"/v1/audits/{audit_id}/deliveries"
    return wait_for(
        lambda: (
            (rows := client.get(path, headers=tenant["auth"]).json())
            and len(rows) >= count
            and rows
        ),
        what=f"{count} deliveries of {audit_id}",
    )


def test_worker_gates_the_audit_and_posts_a_signed_summary(client, tenant, receiver):
    client.put("/v1/policies/models/hooked", json={"max_auc": 0.0}, headers=tenant["auth"])
    audit_id = submit(client, tenant, "hooked", callback_url=f"{receiver}/ok")
    rows = deliveries(client, tenant, audit_id, 1)
    assert [(r["attempt"], r["status_code"], r["event"]) for r in rows] == [
        (1, 200, "audit.succeeded")
    ]

    audit = client.get(f"/v1/audits/{audit_id}", headers=tenant["auth"]).json()
    assert audit["gate"] == "fail"
    reason = next(r for r in audit["gate_reasons"] if r["rule"] == "max_auc")
    assert (reason["status"], reason["measured"], reason["limit"]) == ("fail", audit["auc"], 0.0)

    headers, body = next(
        (h, b) for h, b in Receiver.received["/ok"] if json.loads(b)["audit"]["id"] == audit_id
    )
    timestamp, signature = headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER]
    assert signature.startswith("sha256=")
    assert signing.verify(tenant["secret"], body, timestamp=timestamp, signature=signature)
    assert not signing.verify("whsec_other", body, timestamp=timestamp, signature=signature)
    assert not signing.verify(
        tenant["secret"],
        body.replace(b'"fail"', b'"pass"'),
        timestamp=timestamp,
        signature=signature,
    )
    # A replay with a fresh timestamp needs a new signature; an old one is refused.
    assert not signing.verify(
        tenant["secret"], body, timestamp=str(int(timestamp) + 1), signature=signature
    )
    assert not signing.verify(
        tenant["secret"], body, timestamp=timestamp, signature=signature, tolerance_s=-1
    )
    payload = json.loads(body)
    assert payload["event"] == "audit.succeeded"
    assert payload["audit"]["gate"] == "fail"
    assert payload["audit"]["gate_reasons"] == audit["gate_reasons"]


def test_failing_endpoints_are_retried_with_backoff_and_recorded(client, tenant, receiver):
    flaky = submit(client, tenant, "flaky", callback_url=f"{receiver}/flaky")
    down = submit(client, tenant, "down", callback_url=f"{receiver}/down")

    rows = deliveries(client, tenant, flaky, 3)
    assert [(r["attempt"], r["status_code"]) for r in rows] == [(1, 500), (2, 502), (3, 200)]
    assert rows[0]["error"].startswith("HTTP 500")
    assert rows[2]["error"] is None
    times = [datetime.fromisoformat(r["created_at"]) for r in rows]
    gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6  # 0.3 s, then doubled

    rows = deliveries(client, tenant, down, 3)
    time.sleep(2)  # the attempt limit is 3: no fourth may follow
    rows = client.get(f"/v1/audits/{down}/deliveries", headers=tenant["auth"]).json()
    assert [(r["attempt"], r["status_code"]) for r in rows] == [(1, 503), (2, 503), (3, 503)]


def test_a_cancelled_audit_is_notified_too(client, tenant, receiver):
    audit_id = submit(client, tenant, "cancelled", callback_url=f"{receiver}/ok")
    response = client.post(f"/v1/audits/{audit_id}/cancel", headers=tenant["auth"])
    assert response.status_code == 202
    rows = deliveries(client, tenant, audit_id, 1)
    assert [(r["event"], r["status_code"]) for r in rows] == [("audit.cancelled", 200)]
    headers, body = next(
        (h, b) for h, b in Receiver.received["/ok"] if json.loads(b)["audit"]["id"] == audit_id
    )
    assert json.loads(body)["audit"]["state"] == "cancelled"
    assert headers[signing.DELIVERY_HEADER] == f"{audit_id}.cancelled"
    assert client.get(f"/v1/audits/{audit_id}", headers=tenant["auth"]).json()["gate"] is None


def test_a_failed_audit_is_notified_too(client, tenant, receiver):
    # Uploaded reference models name records by id; these files use the default ids (line
    # numbers), so members and non-members share them. Only the worker reads the records, so
    # the audit is accepted and then fails at run time.
    audit_id = submit(
        client,
        tenant,
        "failing",
        callback_url=f"{receiver}/ok",
        population=tenant["ids"]["non_members"],
        attacks=["rmia"],
        references={"uploaded": [{"model": tenant["ids"]["target"], "trained_on": ["1"]}]},
    )
    rows = deliveries(client, tenant, audit_id, 1)
    assert [(r["attempt"], r["event"], r["status_code"]) for r in rows] == [
        (1, "audit.failed", 200)
    ]
    audit = client.get(f"/v1/audits/{audit_id}", headers=tenant["auth"]).json()
    assert audit["state"] == "failed" and "unique `id`" in audit["error"]
    assert audit["gate"] is None

    headers, body = next(
        (h, b) for h, b in Receiver.received["/ok"] if json.loads(b)["audit"]["id"] == audit_id
    )
    timestamp, signature = headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER]
    assert signing.verify(tenant["secret"], body, timestamp=timestamp, signature=signature)
    assert headers[signing.DELIVERY_HEADER] == f"{audit_id}.failed"
    payload = json.loads(body)
    assert payload["event"] == "audit.failed"
    assert (payload["audit"]["state"], payload["audit"]["error"]) == ("failed", audit["error"])
