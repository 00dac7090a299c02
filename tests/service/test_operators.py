"""Operator commands and the worker's heartbeat, on each backend: `keys list|revoke`, and a
heartbeat that keeps a silent audit from being taken over."""

from __future__ import annotations

import time
import uuid

from typer.testing import CliRunner

from app.cli.main import app as cli_app
from tests.utils.factories import new_key


def _cli(*args: str):
    return CliRunner().invoke(cli_app, list(args))


def test_revoked_key_gets_401_at_once(client):
    tenant = f"ops-{uuid.uuid4().hex[:8]}"
    key, other = new_key(tenant), new_key(tenant)
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/audits", headers=auth).status_code == 200

    listed = _cli("keys", "list", "--tenant", tenant)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.strip().splitlines()
    assert lines[0].split("\t") == ["id", "prefix", "tenant", "created", "revoked"]
    rows = [line.split("\t") for line in lines[1:]]
    assert sorted(r[1] for r in rows) == sorted([key[:10], other[:10]])
    assert all(r[2] == tenant and r[4] == "-" for r in rows)
    assert key not in listed.output  # the list never shows a key itself

    revoked = _cli("keys", "revoke", key[:10])
    assert revoked.exit_code == 0, revoked.output
    response = client.get("/v1/audits", headers=auth)
    assert response.status_code == 401
    assert "revoked" in response.text
    # The tenant's other key still works; revoking again says so and changes nothing.
    assert client.get("/v1/audits", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    again = _cli("keys", "revoke", key[:10])
    assert again.exit_code == 0 and "already revoked" in again.output
    rows = [ln.split("\t") for ln in _cli("keys", "list", "--tenant", tenant).stdout.splitlines()]
    assert {r[1]: r[4] != "-" for r in rows[1:]} == {key[:10]: True, other[:10]: False}

    # By id as well.
    other_id = next(r[0] for r in rows[1:] if r[1] == other[:10])
    assert _cli("keys", "revoke", other_id).exit_code == 0
    assert client.get("/v1/audits", headers={"Authorization": f"Bearer {other}"}).status_code == 401


def test_revoking_an_unknown_key_is_a_usage_error(activate):
    result = _cli("keys", "revoke", "lg_nothere")
    assert result.exit_code == 3
    assert "no API key" in result.output


def _running_audit(client, auth, uploaded, worker: str, stale_after_s: float) -> str:
    from app.audits import lifecycle
    from app.core.db import session_scope

    spec = {"model": {"name": "hb"}, **uploaded}
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 202, response.text
    audit_id = response.json()["id"]
    with session_scope() as db_session:
        assert lifecycle.claim(db_session, audit_id, worker=worker, stale_after_s=stale_after_s)
    return audit_id


def test_heartbeat_thread_keeps_a_silent_audit_from_a_takeover(client, auth, uploaded):
    """No progress call for longer than the stale limit: the timer thread alone keeps the
    claim; once it stops (the worker died), a second worker may take the audit over."""
    from app.audits import lifecycle
    from app.audits.models import Audit
    from app.core.db import session_scope
    from workers.context import Heartbeat

    stale_after_s = 1.5
    audit_id = _running_audit(client, auth, uploaded, "w1", stale_after_s)
    with Heartbeat(audit_id, "w1", interval_s=0.2):
        time.sleep(3 * stale_after_s)  # a silent stage, twice as long as the stale limit
        with session_scope() as db_session:
            taken = lifecycle.claim(db_session, audit_id, worker="w2", stale_after_s=stale_after_s)
        assert not taken
    time.sleep(2 * stale_after_s)  # the heartbeat stopped, as when the worker is killed
    with session_scope() as db_session:
        assert lifecycle.claim(db_session, audit_id, worker="w2", stale_after_s=stale_after_s)
        audit = db_session.get(Audit, audit_id)
        assert audit.worker == "w2" and audit.attempts == 2


def test_heartbeat_stops_once_the_audit_is_not_its_worker_s(client, auth, uploaded):
    from app.audits import lifecycle
    from app.core.db import session_scope
    from workers.context import Heartbeat

    audit_id = _running_audit(client, auth, uploaded, "w1", 600)
    with Heartbeat(audit_id, "w1", interval_s=0.1) as heartbeat:
        with session_scope() as db_session:
            assert lifecycle.end(db_session, audit_id, worker="w1", state="failed", message="test")
        heartbeat._thread.join(timeout=10)
        assert not heartbeat._thread.is_alive()
