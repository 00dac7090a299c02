"""A real Celery worker process on real Redis and PostgreSQL audits real small classifiers."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from app.client import pack_model_folder
from demo.intent import (
    build_example,
    make_intent_records,
    read_jsonl,
    train_intent_classifier,
)
from tests.utils.env import REDIS_URL
from tests.utils.factories import jsonl, new_key, upload
from tests.utils.worker import api_client, worker_service

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
    with worker_service(pg_schema, tmp_path_factory.mktemp("home-worker")) as env:
        yield env


@pytest.fixture
def client(service):
    with api_client(service) as test_client:
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


def test_broker_outage_at_submit_is_repaired_by_the_sweeper(client, models, set_env):
    from app.audits.sweeper import sweep_once
    from app.core.config import get_settings
    from app.core.db import session_scope

    auth = {"Authorization": f"Bearer {new_key()}"}
    set_env(LEAKGATE_BROKER_URL="redis://127.0.0.1:1/0")  # nothing listens there
    audit_id = submit(client, auth, models, "unseen")
    time.sleep(4)
    assert client.get(f"/v1/audits/{audit_id}", headers=auth).json()["state"] == "queued"

    set_env(LEAKGATE_BROKER_URL=REDIS_URL)
    with session_scope() as s:
        assert audit_id in sweep_once(s, get_settings())
    assert wait_done(client, auth, audit_id)["state"] == "succeeded"


def prediction_records(n: int, *, member: bool, seed: int) -> list[dict]:
    """A black-box model's outputs: members get visibly higher true-class probability."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(3))
        p_true = rng.beta(8, 2) if member else rng.beta(4, 3)
        rest = (1 - p_true) * rng.dirichlet([1, 1])
        probs = np.insert(rest, label, p_true)
        rows.append(
            {
                "id": f"{'m' if member else 'n'}{i}",
                "label": label,
                "probs": [float(p) for p in probs],
            }
        )
    return rows


def test_predictions_target_with_records_at_risk(client):
    auth = {"Authorization": f"Bearer {new_key()}"}
    ids = {}
    evaluation = prediction_records(200, member=False, seed=3)
    for field, rows in (
        ("members", prediction_records(300, member=True, seed=1)),
        ("non_members", prediction_records(300, member=False, seed=2)),
        ("evaluation", evaluation),
    ):
        response = upload(client, auth, jsonl(rows), "dataset", f"{field}.jsonl")
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    spec = {"model": {"name": "tabular"}, "task": "predictions", **ids, "records_at_risk": 5}
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 202, response.text
    audit_id = response.json()["id"]
    assert wait_done(client, auth, audit_id)["state"] == "succeeded"
    report = client.get(f"/v1/audits/{audit_id}/report", headers=auth).json()
    loss = next(a for a in report["attacks"] if a["name"] == "loss")
    assert loss["auc"] > 0.7
    at_risk = report["records_at_risk"]
    assert [r["rank"] for r in at_risk] == [1, 2, 3, 4, 5]
    assert all(r["record_id"].startswith("m") for r in at_risk)
    assert [r["score"] for r in at_risk] == sorted((r["score"] for r in at_risk), reverse=True)
    # Utility is measured on the evaluation set, with its exact interval.
    utility = report["utility"]
    hits = sum(int(np.argmax(r["probs"])) == int(r["label"]) for r in evaluation)
    assert utility["evaluated_on"] == "evaluation" and utility["n_evaluated"] == 200
    assert utility["accuracy"] == pytest.approx(hits / 200)
    ci = utility["accuracy_ci"]
    assert ci["low"] < utility["accuracy"] < ci["high"] and ci["confidence"] == 0.95
    csv_text = client.get(f"/v1/audits/{audit_id}/records.csv", headers=auth).text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("rank,record_id,sha256,score")
    assert len(lines) == 6


def test_records_at_risk_hide_text_unless_allowed(client, models):
    auth = {"Authorization": f"Bearer {new_key()}"}
    hidden = submit(client, auth, models, "memorised", records_at_risk=3)
    shown = submit(client, auth, models, "memorised", records_at_risk=3, include_text=True)
    for audit_id in (hidden, shown):
        assert wait_done(client, auth, audit_id)["state"] == "succeeded"
    hidden_rows = client.get(f"/v1/audits/{hidden}/report", headers=auth).json()["records_at_risk"]
    shown_rows = client.get(f"/v1/audits/{shown}/report", headers=auth).json()["records_at_risk"]
    assert len(hidden_rows) == 3 and all(r["text"] is None for r in hidden_rows)
    members = {r["id"]: r["text"] for r in read_jsonl(models["members"])}
    for row in shown_rows:
        assert row["text"] == members[row["record_id"]]
        assert row["sha256"] == hashlib.sha256(row["text"].encode()).hexdigest()
    assert [r["sha256"] for r in hidden_rows] == [r["sha256"] for r in shown_rows]
    csv_text = client.get(f"/v1/audits/{hidden}/records.csv", headers=auth).text
    for text in members.values():
        assert text not in csv_text


def test_reference_attacks_with_models_trained_by_the_worker(client, models, tmp_path):
    auth = {"Authorization": f"Bearer {new_key()}"}
    population = make_intent_records(200, seed=7, label_noise=0.2, id_prefix="p")
    response = upload(client, auth, jsonl(population), "dataset", "population.jsonl")
    assert response.status_code == 201, response.text
    audit_id = submit(
        client,
        auth,
        models,
        "memorised",
        population=response.json()["id"],
        attacks=["loss", "lira", "lira-offline", "rmia", "rmia-offline"],
        references={"count": 2, "train": {"epochs": 2}},
    )
    audit = wait_done(client, auth, audit_id, timeout_s=400)
    assert audit["state"] == "succeeded", audit["error"]
    report = client.get(f"/v1/audits/{audit_id}/report", headers=auth).json()
    refs = report["reference_models"]
    assert refs["count"] == 2 and refs["source"] == "trained" and refs["mode"] == "online"
    assert refs["n_population"] == 200 and refs["training_seconds"] > 0
    by_name = {a["name"]: a for a in report["attacks"]}
    assert by_name["lira"]["n_reference_models"] == 2
    assert by_name["loss"]["n_reference_models"] == 0
    # 5 attacks x 1 statistic (no DP-SGD claim, so Clopper-Pearson only): one family.
    assert report["epsilon_lower_bound"]["n_tests"] == 5
    assert len(report["epsilon_bounds"]) == 5
    assert "references" in report["timings"]


def test_causal_lm_audit_with_a_reference_model(client, tmp_path):
    from attacks.testing import build_tiny_causal_lm, train_tiny_causal_lm

    pool = [r["text"] for r in make_intent_records(240, seed=3)]
    members, non_members, public = pool[:80], pool[80:160], pool[160:]
    target = build_tiny_causal_lm(tmp_path / "lm", pool)
    train_tiny_causal_lm(target, members, epochs=60)
    reference = build_tiny_causal_lm(tmp_path / "ref", pool)
    train_tiny_causal_lm(reference, public, epochs=60)

    auth = {"Authorization": f"Bearer {new_key()}"}
    ids = {}
    for field, body, kind, name in (
        ("target", pack_model_folder(target, tmp_path / "lm.tgz").read_bytes(), "model", "lm.tgz"),
        (
            "reference_lm",
            pack_model_folder(reference, tmp_path / "r.tgz").read_bytes(),
            "model",
            "r.tgz",
        ),
        ("members", jsonl([{"text": t} for t in members]), "dataset", "m.jsonl"),
        ("non_members", jsonl([{"text": t} for t in non_members]), "dataset", "n.jsonl"),
    ):
        response = upload(client, auth, body, kind, name)
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    spec = {"model": {"name": "tiny-lm"}, "task": "causal-lm", **ids}
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 202, response.text
    audit = wait_done(client, auth, response.json()["id"])
    assert audit["state"] == "succeeded", audit["error"]
    report = client.get(f"/v1/audits/{audit['id']}/report", headers=auth).json()
    by_name = {a["name"]: a for a in report["attacks"]}
    assert set(by_name) == {"loss", "zlib", "min_k", "min_k_plus_plus", "reference_ratio"}
    assert by_name["loss"]["auc"] > 0.6
    assert report["target"]["task"] == "causal-lm"
    assert report["utility"] is None


def test_cancel_stops_a_running_audit(client, models):
    auth = {"Authorization": f"Bearer {new_key()}"}
    population = make_intent_records(200, seed=8, id_prefix="c")
    response = upload(client, auth, jsonl(population), "dataset", "population.jsonl")
    audit_id = submit(
        client,
        auth,
        models,
        "memorised",
        population=response.json()["id"],
        attacks=["loss", "lira"],
        references={"count": 4, "train": {"epochs": 200}},  # far longer than the test waits
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        audit = client.get(f"/v1/audits/{audit_id}", headers=auth).json()
        if audit["state"] == "running" and "training" in (audit["stage"] or ""):
            break
        time.sleep(0.3)
    assert audit["state"] == "running", audit
    response = client.post(f"/v1/audits/{audit_id}/cancel", headers=auth)
    assert response.status_code == 202 and response.json()["cancel_requested"]
    audit = wait_done(client, auth, audit_id, timeout_s=60)
    assert audit["state"] == "cancelled"
    assert client.get(f"/v1/audits/{audit_id}/report", headers=auth).status_code == 409


def test_reference_models_uploaded_by_the_pipeline(client, models, tmp_path):
    """The pipeline trained its own references and says which records each one saw."""
    auth = {"Authorization": f"Bearer {new_key()}"}
    population = make_intent_records(200, seed=11, label_noise=0.2, id_prefix="q")
    audited = read_jsonl(models["members"]) + read_jsonl(models["non_members"])
    pool = audited + population
    vocab = [r["text"] for r in pool]
    rng = np.random.default_rng(0)
    inside = rng.random(len(pool)) < 0.5
    references = []
    for k, chosen in enumerate((inside, ~inside)):  # a complementary pair: each record IN once
        records = [r for r, keep in zip(pool, chosen, strict=True) if keep]
        folder = tmp_path / f"ref{k}"
        train_intent_classifier(folder, records, epochs=10, seed=k, vocab_texts=vocab)
        body = pack_model_folder(folder, tmp_path / f"ref{k}.tgz").read_bytes()
        response = upload(client, auth, body, "model", f"ref{k}.tgz")
        assert response.status_code == 201, response.text
        references.append(
            {"model": response.json()["id"], "trained_on": [r["id"] for r in records]}
        )
    response = upload(client, auth, jsonl(population), "dataset", "population.jsonl")
    audit_id = submit(
        client,
        auth,
        models,
        "memorised",
        population=response.json()["id"],
        attacks=["loss", "lira-global", "rmia"],
        references={"uploaded": references},
    )
    audit = wait_done(client, auth, audit_id)
    assert audit["state"] == "succeeded", audit["error"]
    report = client.get(f"/v1/audits/{audit_id}/report", headers=auth).json()
    refs = report["reference_models"]
    assert refs["source"] == "uploaded" and refs["count"] == 2 and refs["mode"] == "online"
    assert {a["name"]: a["n_reference_models"] for a in report["attacks"]}["rmia"] == 2

    unknown = {"uploaded": [{"model": references[0]["model"], "trained_on": ["nope"]}]}
    audit_id = submit(
        client,
        auth,
        models,
        "memorised",
        population=response.json()["id"],
        attacks=["rmia"],
        references=unknown,
    )
    audit = wait_done(client, auth, audit_id)
    assert audit["state"] == "failed" and "nope" in audit["error"]


def test_audit_with_a_canary_set_measures_every_canary(client, models, tmp_path):
    """The pipeline's flow: create a set, train with its records, audit naming the set."""
    auth = {"Authorization": f"Bearer {new_key()}"}
    from demo.intent import INTENTS

    body = {"template": "pin", "count": 12, "repetitions": 20, "seed": 4, "labels": INTENTS}
    created = client.post("/v1/canary-sets", json=body, headers=auth).json()
    members = read_jsonl(models["members"])
    pool = members + read_jsonl(models["non_members"])
    digits = [f"my pin code is {d} {d} {d} {d}" for d in range(10)]
    train_intent_classifier(
        tmp_path / "planted",
        members + created["records"],
        epochs=15,
        vocab_texts=[r["text"] for r in pool] + digits,
    )
    planted = {"planted": pack_model_folder(tmp_path / "planted", tmp_path / "planted.tar.gz")}
    audit_id = submit(client, auth, {**models, **planted}, "planted", canary_set=created["id"])
    audit = wait_done(client, auth, audit_id)
    assert audit["state"] == "succeeded", audit["error"]
    report = client.get(f"/v1/audits/{audit_id}/report", headers=auth).json()
    section = report["canaries"]
    summary = section["summary"]
    # Canaries repeated 20 times bound a group's privacy, not a record's: not in the verdict.
    # Loss and confidence rank records identically, so they are one test of the family.
    assert {b["source"] for b in report["epsilon_bounds"]} == {"loss"}
    assert report["epsilon_bounds"][0]["details"]["same_ranking"] == "confidence"
    assert summary["n_inserted"] == created["n_inserted"] and summary["exposure_method"] == "exact"
    assert summary["mean_exposure_inserted"] > summary["mean_exposure_held_out"] + 2
    assert summary["one_run_bound"]["n_canaries"] == 12
    assert len(section["canaries"]) == 12
    assert all(c["secret"] is None and c["recovered"] is None for c in section["canaries"])
    flags = {c["id"]: c["inserted"] for c in created["canaries"]}
    assert {c["id"]: c["inserted"] for c in section["canaries"]} == flags
