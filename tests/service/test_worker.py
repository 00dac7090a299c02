"""A real Celery worker process on real Redis and PostgreSQL audits real small classifiers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.cli.client import pack_model_folder
from app.example.intent import (
    build_example,
    make_intent_records,
    read_jsonl,
    train_intent_classifier,
)
from tests.conftest import REDIS_URL, backend_env, new_key, reset_caches
from tests.service.helpers import upload

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A model that memorised the members, and one that never saw them (same recipe)."""
    root = tmp_path_factory.mktemp("models")
    files = build_example(root / "example", n_members=200, n_non_members=200, epochs=25)
    pool = read_jsonl(files.members) + read_jsonl(files.non_members)
    unrelated = make_intent_records(200, seed=99, label_noise=0.2, id_prefix="u")
    train_intent_classifier(
        root / "unseen", unrelated, epochs=25, vocab_texts=[r["text"] for r in pool + unrelated]
    )
    return {
        "memorised": pack_model_folder(files.model_dir, root / "memorised.tar.gz"),
        "unseen": pack_model_folder(root / "unseen", root / "unseen.tar.gz"),
        "members": files.members,
        "non_members": files.non_members,
    }


@pytest.fixture(scope="module")
def service(pg_schema, tmp_path_factory):
    """Environment for PostgreSQL + Redis, migrated, with one real worker process running."""
    env = backend_env("postgres", tmp_path_factory.mktemp("home-worker"), pg_schema)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_caches()
    from app.core.migrate import upgrade

    upgrade()
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--loglevel", "WARNING"],
        env=os.environ.copy(),
    )
    yield env
    worker.terminate()
    worker.wait(timeout=30)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    reset_caches()


@pytest.fixture
def client(service):
    os.environ.update(service)
    reset_caches()
    from app.main import create_app

    with TestClient(create_app(run_sweeper=False)) as test_client:
        yield test_client


def wait_done(client, auth, audit_id: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        audit = client.get(f"/v1/audits/{audit_id}", headers=auth).json()
        if audit["state"] in ("succeeded", "failed", "cancelled"):
            return audit
        time.sleep(0.5)
    raise AssertionError(f"audit {audit_id} did not finish: {audit}")


def submit(client, auth, models, model_key: str, **extra) -> str:
    ids = {
        "target": upload(client, auth, models[model_key].read_bytes(), "model", "m.tar.gz"),
        "members": upload(client, auth, models["members"].read_bytes(), "dataset", "m.jsonl"),
        "non_members": upload(
            client, auth, models["non_members"].read_bytes(), "dataset", "n.jsonl"
        ),
    }
    for response in ids.values():
        assert response.status_code == 201, response.text
    spec = {"model": {"name": model_key}, **{k: r.json()["id"] for k, r in ids.items()}, **extra}
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_memorising_model_is_caught_and_unseen_model_is_not(client, models):
    auth = {"Authorization": f"Bearer {new_key()}"}
    leaky = submit(client, auth, models, "memorised", dp_claim={"epsilon": 0.1, "delta": 1e-5})
    clean = submit(client, auth, models, "unseen", dp_claim={"epsilon": 0.1, "delta": 1e-5})

    audit = wait_done(client, auth, leaky)
    assert audit["state"] == "succeeded", audit["error"]
    assert audit["progress"] == 1.0
    report = client.get(f"/v1/audits/{leaky}/report", headers=auth).json()
    loss = next(a for a in report["attacks"] if a["name"] == "loss")
    print("memorised model: loss AUC", loss["auc"], "eps_lb", report["epsilon_lower_bound"])
    assert loss["auc"] > 0.75
    assert loss["auc_ci"]["low"] > 0.6
    assert loss["n_members"] == 200 and loss["n_non_members"] == 200
    assert report["epsilon_lower_bound"]["value"] > 0.1
    assert report["verdict"]["status"] == "violation"

    audit = wait_done(client, auth, clean)
    assert audit["state"] == "succeeded", audit["error"]
    report = client.get(f"/v1/audits/{clean}/report", headers=auth).json()
    loss = next(a for a in report["attacks"] if a["name"] == "loss")
    print("unseen model: loss AUC", loss["auc"], "eps_lb", report["epsilon_lower_bound"])
    assert 0.38 < loss["auc"] < 0.62
    assert loss["auc_ci"]["low"] < 0.5 < loss["auc_ci"]["high"] or abs(loss["auc"] - 0.5) < 0.05
    assert report["verdict"]["status"] == "consistent"


def test_second_delivery_does_not_write_a_second_report(client, models):
    from sqlalchemy import func, select

    from app.audits.models import Report
    from app.audits.queue import enqueue
    from app.core.db import session_scope

    auth = {"Authorization": f"Bearer {new_key()}"}
    audit_id = submit(client, auth, models, "unseen")
    assert wait_done(client, auth, audit_id)["state"] == "succeeded"
    finished = client.get(f"/v1/audits/{audit_id}", headers=auth).json()["finished_at"]
    enqueue(audit_id)
    time.sleep(3)
    with session_scope() as s:
        n = s.scalar(select(func.count()).select_from(Report).where(Report.audit_id == audit_id))
    assert n == 1
    assert client.get(f"/v1/audits/{audit_id}", headers=auth).json()["finished_at"] == finished


def test_broker_outage_at_submit_is_repaired_by_the_sweeper(client, models, monkeypatch):
    from app.audits.sweeper import sweep_once
    from app.core.config import get_settings
    from app.core.db import session_scope

    auth = {"Authorization": f"Bearer {new_key()}"}
    monkeypatch.setenv("LEAKGATE_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    reset_caches()
    audit_id = submit(client, auth, models, "unseen")
    time.sleep(4)
    assert client.get(f"/v1/audits/{audit_id}", headers=auth).json()["state"] == "queued"

    monkeypatch.setenv("LEAKGATE_BROKER_URL", REDIS_URL)
    reset_caches()
    with session_scope() as s:
        assert audit_id in sweep_once(s, get_settings())
    assert wait_done(client, auth, audit_id)["state"] == "succeeded"
