"""LiRA and RMIA on a causal LM: the target a LoRA adapter, its references LoRA adapters the
worker trains over the same base model. Specs that cannot work are refused with a reason."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from app.audits.schemas import AuditSpec, default_attacks
from tests.utils.factories import jsonl, new_key, upload
from tests.utils.worker import api_client, worker_service

IDS = {"target": "t", "members": "m", "non_members": "n", "population": "p"}


def lm_spec(**change) -> dict:
    return {"model": {"name": "lm"}, "task": "causal-lm", **IDS, **change}


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"attacks": ["loss", "lira"]}, "base_model must name its base"),
        ({"attacks": ["rmia"], "population": None, "base_model": "b"}, "population"),
        (
            {"attacks": ["lira"], "base_model": "b", "references": {"uploaded": []}},
            None,  # accepted: an empty upload list is no upload
        ),
        (
            {
                "attacks": ["lira"],
                "base_model": "b",
                "references": {"uploaded": [{"model": "r", "trained_on": []}]},
            },
            "references.uploaded",
        ),
        (
            {"attacks": ["lira"], "base_model": "b", "references": {"base_model": "x"}},
            "references.base_model",
        ),
        (
            {"attacks": ["lira"], "base_model": "b", "references": {"count": 4, "shards": 2}},
            "references.shards",
        ),
    ],
)
def test_lm_reference_attacks_need_an_adapter_target_and_one_task(change, phrase):
    if phrase is None:
        assert AuditSpec(**lm_spec(**change)).uses_references
        return
    with pytest.raises(ValidationError, match=phrase):
        AuditSpec(**lm_spec(**change))


def test_lm_defaults_add_reference_attacks_only_when_references_are_asked_for():
    plain = AuditSpec(**lm_spec(base_model="b"))
    assert not plain.uses_references
    asked = AuditSpec(**lm_spec(base_model="b", references={"count": 2}))
    assert default_attacks(asked)[-2:] == ["lira-global", "rmia"]
    assert not AuditSpec(**lm_spec(references={"count": 2})).uses_references  # no base


@pytest.fixture(scope="module")
def service(pg_schema, tmp_path_factory):
    with worker_service(pg_schema, tmp_path_factory.mktemp("home-lm-references")) as env:
        yield env


@pytest.fixture
def client(service):
    with api_client(service) as test_client:
        yield test_client


@pytest.mark.slow
def test_lm_lira_audit_of_a_lora_target_end_to_end(client, tmp_path):
    from app.client import pack_model_folder
    from attacks.testing import (
        build_tiny_causal_lm,
        train_tiny_causal_lm,
        train_tiny_lm_lora_adapter,
    )
    from demo.intent import make_intent_records

    pool = [r["text"] for r in make_intent_records(240, seed=5)]
    members, non_members, population = pool[:60], pool[60:120], pool[120:]
    base = build_tiny_causal_lm(tmp_path / "base", pool)
    train_tiny_causal_lm(base, population[60:], epochs=20)  # a base that knows the language
    adapter = train_tiny_lm_lora_adapter(base, tmp_path / "lora", members, steps=80)

    auth = {"Authorization": f"Bearer {new_key()}"}
    ids = {}
    for field, body, kind, name in (
        ("target", pack_model_folder(adapter, tmp_path / "a.tgz").read_bytes(), "model", "a.tgz"),
        ("base_model", pack_model_folder(base, tmp_path / "b.tgz").read_bytes(), "model", "b.tgz"),
        ("members", jsonl([{"text": t} for t in members]), "dataset", "m.jsonl"),
        ("non_members", jsonl([{"text": t} for t in non_members]), "dataset", "n.jsonl"),
        ("population", jsonl([{"text": t} for t in population]), "dataset", "p.jsonl"),
    ):
        response = upload(client, auth, body, kind, name)
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    spec = {
        "model": {"name": "tiny-lora-lm"},
        "task": "causal-lm",
        **ids,
        "attacks": ["loss", "lira-global", "rmia"],
        "references": {"count": 4, "train": {"epochs": 4, "lr": 2e-2, "batch_size": 16}},
    }
    without_base = {k: v for k, v in spec.items() if k != "base_model"}
    response = client.post("/v1/audits", json=without_base, headers=auth)
    assert response.status_code == 422 and "base_model" in response.text
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 202, response.text

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        audit = client.get(f"/v1/audits/{response.json()['id']}", headers=auth).json()
        if audit["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert audit["state"] == "succeeded", audit["error"]
    report = client.get(f"/v1/audits/{audit['id']}/report", headers=auth).json()
    refs = report["reference_models"]
    assert refs["count"] == 4 and refs["source"] == "trained" and refs["mode"] == "online"
    assert refs["trained_together"] and refs["shards"] == 1 and refs["n_population"] == 120
    by_name = {a["name"]: a for a in report["attacks"]}
    assert by_name["lira-global"]["n_reference_models"] == 4
    assert by_name["lira-global"]["auc"] > 0.7, by_name
    assert by_name["rmia"]["auc"] > 0.6, by_name
    assert report["target"]["task"] == "causal-lm"
