"""A real worker writes score histograms and slices into the report: by true class (the leaky
class found) and by whether the target classified each record correctly."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.utils.factories import jsonl, new_key, upload
from tests.utils.worker import api_client, worker_service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(pg_schema, tmp_path_factory):
    with worker_service(pg_schema, tmp_path_factory.mktemp("home-slices")) as env:
        yield env


@pytest.fixture
def client(service):
    with api_client(service) as test_client:
        yield test_client


def outputs(n: int, *, member: bool, seed: int) -> list[dict]:
    """A black-box model's probabilities: only class-2 members are fitted more sharply."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(3))
        p_true = rng.beta(9, 1) if member and label == 2 else rng.beta(4, 3)
        probs = np.insert((1 - p_true) * rng.dirichlet([1, 1]), label, p_true)
        rows.append({"id": f"{'m' if member else 'n'}{i}", "label": label, "probs": probs.tolist()})
    return rows


def test_the_worker_reports_histograms_and_the_leaky_class(client):
    auth = {"Authorization": f"Bearer {new_key()}"}
    members, non_members = outputs(300, member=True, seed=1), outputs(300, member=False, seed=2)
    ids = {}
    for field, rows in (("members", members), ("non_members", non_members)):
        response = upload(client, auth, jsonl(rows), "dataset", f"{field}.jsonl")
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    spec = {"model": {"name": "tabular"}, "task": "predictions", **ids}
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 202, response.text
    audit_id = response.json()["id"]
    deadline = time.monotonic() + 240
    while (audit := client.get(f"/v1/audits/{audit_id}", headers=auth).json())["state"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline, audit
        time.sleep(0.5)
    assert audit["state"] == "succeeded", audit
    report = client.get(f"/v1/audits/{audit_id}/report", headers=auth).json()

    names = [a["name"] for a in report["attacks"]]
    assert [h["attack"] for h in report["score_histograms"]] == names
    for hist in report["score_histograms"]:
        assert sum(hist["members"]) == 300 and sum(hist["non_members"]) == 300
    slices = report["slices"]
    assert slices["most_vulnerable_class"] == "2"
    by_class = [r for r in slices["results"] if r["feature"] == "class" and r["attack"] == "loss"]
    assert sorted(r["value"] for r in by_class) == ["0", "1", "2"]
    assert sum(r["n_members"] for r in by_class) == 300
    # Correct/incorrect slices follow the uploaded outputs' arg-max against the labels.
    correct = sum(int(np.argmax(r["probs"])) == r["label"] for r in members + non_members)
    right = next(r for r in slices["results"] if r["value"] == "correct" and r["attack"] == "loss")
    assert right["n_members"] + right["n_non_members"] == correct
