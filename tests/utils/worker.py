"""A migrated PostgreSQL + Redis environment with one real worker process, for the tests that
need the whole path (API → broker → worker → database)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from tests.utils.env import backend_env, environ, reset_caches


@contextmanager
def worker_service(
    pg_schema: str, home: Path, extra_env: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """Point the settings at the schema, migrate it, run a worker; restore everything after."""
    env = {**backend_env("postgres", home, pg_schema), **(extra_env or {})}
    with environ(env):
        from app.core.migrate import upgrade

        upgrade()
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--loglevel", "WARNING"],
            env=os.environ.copy(),
        )
        try:
            yield env
        finally:
            worker.terminate()
            worker.wait(timeout=30)


@contextmanager
def api_client(env: dict[str, str]) -> Iterator[TestClient]:
    """An in-process API on the worker's environment (no sweeper: tests drive time)."""
    os.environ.update(env)
    reset_caches()
    from app.main import create_app

    with TestClient(create_app(run_sweeper=False)) as test_client:
        yield test_client


class Processes:
    """Workers and sweepers started as real processes, each in a session of its own, so that a
    kill -9 takes a worker's whole tree (Celery master and children) as a crash would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[subprocess.Popen] = []

    def _start(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env={**os.environ, **self.env, **(extra_env or {})},
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    def worker(self, concurrency: int = 1, **extra_env: str) -> subprocess.Popen:
        args = ("worker", "--concurrency", str(concurrency), "--loglevel", "WARNING")
        return self._start(*args, extra_env=extra_env)

    def sweeper(self, **extra_env: str) -> subprocess.Popen:
        return self._start("sweeper", extra_env=extra_env)

    def stop_workers(self) -> None:
        """Stop every worker cleanly (warm shutdown); sweepers keep running."""
        workers = [p for p in self.started if p.args[3] == "worker" and p.poll() is None]
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=60)

    @staticmethod
    def kill9(proc: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9(proc)


def audit_rows(audit_ids: list[str]) -> dict[str, dict]:
    """State, worker, attempts, error and report count of each audit, read from the database
    (not the API: these tests also run while parts of the service are down)."""
    from sqlalchemy import func, select

    from app.audits.models import Audit, Report
    from app.core.db import session_scope

    with session_scope() as db_session:
        audits = db_session.scalars(select(Audit).where(Audit.id.in_(audit_ids))).all()
        reports = dict(
            db_session.execute(
                select(Report.audit_id, func.count())
                .where(Report.audit_id.in_(audit_ids))
                .group_by(Report.audit_id)
            ).all()
        )
        return {
            a.id: {
                "state": a.state,
                "stage": a.stage,
                "worker": a.worker,
                "attempts": a.attempts,
                "error": a.error,
                "started_at": a.started_at,
                "reports": reports.get(a.id, 0),
            }
            for a in audits
        }


FINAL = ("succeeded", "failed", "cancelled")


def wait_final(audit_ids: list[str], timeout_s: float = 300) -> dict[str, dict]:
    """Wait until every audit has ended; database errors (an outage under test) are retried."""
    deadline = time.monotonic() + timeout_s
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        try:
            rows = audit_rows(audit_ids)
        except OperationalError:
            time.sleep(0.5)
            continue
        if len(rows) == len(audit_ids) and all(r["state"] in FINAL for r in rows.values()):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"audits did not end in {timeout_s} s: {rows}")


def wait_stage(audit_id: str, matches, timeout_s: float = 120) -> str:
    """Poll until the audit's stage satisfies `matches` (a running audit); return the stage."""
    deadline = time.monotonic() + timeout_s
    row: dict = {}
    while time.monotonic() < deadline:
        row = audit_rows([audit_id]).get(audit_id, {})
        if row.get("state") == "running" and matches(row.get("stage") or ""):
            return row["stage"]
        if row.get("state") in FINAL:
            break
        time.sleep(0.02)
    raise AssertionError(f"audit {audit_id} never reached the stage: {row}")


def kill_at_stage(proc: subprocess.Popen, audit_id: str, matches, timeout_s: float = 120) -> str:
    """Kill -9 the worker while the audit is at a matching stage (PostgreSQL only).

    The audit's row is read with FOR UPDATE and held while killing, so the worker cannot move
    past the stage seen: its next progress write waits on the lock and dies with it.
    """
    from sqlalchemy import text

    from app.core.db import get_engine

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with get_engine().connect() as conn:
            row = conn.execute(
                text("SELECT state, stage FROM audits WHERE id = :id FOR UPDATE"), {"id": audit_id}
            ).one()
            if row.state == "running" and matches(row.stage or ""):
                Processes.kill9(proc)
                conn.rollback()
                return row.stage
            conn.rollback()
            if row.state in FINAL:
                break
        time.sleep(0.02)
    raise AssertionError(f"audit {audit_id} never reached the stage to kill at")


def submit_audits(client, auth: dict[str, str], ids: dict[str, str], n: int, **spec) -> list[str]:
    audit_ids = []
    for i in range(n):
        body = {"model": {"name": f"m{i}"}, **ids, **spec}
        response = client.post("/v1/audits", json=body, headers=auth)
        assert response.status_code == 202, response.text
        audit_ids.append(response.json()["id"])
    return audit_ids
