"""Canary sets through the API: create, mask, reveal, download, tenant isolation, bad input."""

from __future__ import annotations

import json

import pytest

from tests.utils.factories import (
    DIGITS_TEXT,
    LABELS,
    dataset_bytes,
    new_key,
    tiny_model_archive,
    upload,
)

PIN_SET = {"template": "pin", "count": 12, "repetitions": 5, "seed": 3, "labels": LABELS}


def create(client, auth, **body):
    return client.post("/v1/canary-sets", json=body, headers=auth)


def test_create_mask_reveal_and_download(client, auth):
    response = create(client, auth, **PIN_SET)
    assert response.status_code == 201, response.text
    created = response.json()
    set_id = created["id"]
    assert response.headers["Location"] == f"/v1/canary-sets/{set_id}"
    assert created["n_inserted"] + created["n_held_out"] == 12
    assert len(created["records"]) == 5 * created["n_inserted"]
    assert all(
        c["secret"] is None and c["text"] == "my pin code is * * * *" for c in created["canaries"]
    )
    assert created["seed"] is None

    masked = client.get(f"/v1/canary-sets/{set_id}", headers=auth).json()
    assert masked["canaries"] == created["canaries"]
    revealed = client.get(f"/v1/canary-sets/{set_id}", params={"reveal": "true"}, headers=auth)
    revealed = revealed.json()
    assert revealed["seed"] == 3 and revealed["revealed"] is True
    secrets = {c["id"]: c for c in revealed["canaries"]}
    assert len({c["secret"] for c in secrets.values()}) == 12
    for record in created["records"]:
        canary = secrets[record["id"].rsplit("-", 1)[0]]
        assert canary["inserted"] and record["text"] == canary["text"]
        assert record["label"] == canary["label"] in LABELS
    assert {c["label"] for c in secrets.values()} <= set(LABELS)

    download = client.get(f"/v1/canary-sets/{set_id}/records.jsonl", headers=auth)
    assert download.status_code == 200
    assert [json.loads(line) for line in download.text.splitlines()] == created["records"]


@pytest.fixture(scope="module")
def digits_model_body(tmp_path_factory) -> bytes:
    """The tiny classifier with digit tokens, so PIN canaries fit its vocabulary."""
    return tiny_model_archive(tmp_path_factory.mktemp("digits"), vocab_texts=(DIGITS_TEXT,))


def test_other_tenants_cannot_see_or_use_a_set(client, auth, uploaded, digits_model_body):
    model_body = digits_model_body
    uploaded = {
        **uploaded,
        "target": upload(client, auth, model_body, "model", "d.tar.gz").json()["id"],
    }
    set_id = create(client, auth, **PIN_SET).json()["id"]
    spec = {"model": {"name": "m"}, **uploaded, "canary_set": set_id}
    assert client.post("/v1/audits", json=spec, headers=auth).status_code == 202
    other = {"Authorization": f"Bearer {new_key()}"}
    assert client.get(f"/v1/canary-sets/{set_id}", headers=other).status_code == 404
    assert client.get(f"/v1/canary-sets/{set_id}/records.jsonl", headers=other).status_code == 404
    assert client.get(f"/v1/canary-sets/{set_id}").status_code == 401
    # The same audit from the other tenant, with its own uploads, cannot name the set.
    own = {
        field: upload(client, other, body, kind, name).json()["id"]
        for field, body, kind, name in (
            ("target", model_body, "model", "tiny.tar.gz"),
            ("members", dataset_bytes(20), "dataset", "m.jsonl"),
            ("non_members", dataset_bytes(20, offset=100), "dataset", "n.jsonl"),
        )
    }
    response = client.post("/v1/audits", json={**spec, **own}, headers=other)
    assert response.status_code == 422 and f"no canary set {set_id!r}" in response.text
    assert (
        client.post(
            "/v1/audits", json={**spec, **own, "canary_set": None}, headers=other
        ).status_code
        == 202
    )


def test_audit_spec_checks_the_canary_set(client, auth, uploaded):
    spec = {"model": {"name": "m"}, **uploaded}
    missing = client.post("/v1/audits", json={**spec, "canary_set": "nope"}, headers=auth)
    assert missing.status_code == 422 and "no canary set" in missing.text
    lm_set = create(client, auth, task="causal-lm", template="pin", count=4, seed=1).json()["id"]
    wrong_task = client.post("/v1/audits", json={**spec, "canary_set": lm_set}, headers=auth)
    assert wrong_task.status_code == 422 and "causal-lm" in wrong_task.text
    foreign = create(client, auth, **{**PIN_SET, "labels": ["balance", "weather"]}).json()["id"]
    bad_labels = client.post("/v1/audits", json={**spec, "canary_set": foreign}, headers=auth)
    assert bad_labels.status_code == 422 and "weather" in bad_labels.text


def test_bad_requests_are_rejected_with_a_reason(client, auth):
    cases = [
        ({"template": "pin", "count": 3}, "labels"),
        ({"template": "my pin is", "count": 3, "labels": LABELS}, "slots"),
        ({"template": "{d}", "count": 6, "labels": LABELS}, "do not fit"),
        ({"template": "pin", "count": 3, "labels": ["a"]}, "two distinct labels"),
        (
            {"kind": "audit", "template": "pin", "count": 3, "repetitions": 2, "labels": LABELS},
            "once",
        ),
        ({"task": "causal-lm", "template": "pin", "count": 3, "labels": LABELS}, "no labels"),
        ({"kind": "audit", "dataset": "nope", "count": 3, "labels": LABELS}, "no dataset"),
        ({"template": "pin", "count": 0, "labels": LABELS}, "count"),
    ]
    for body, reason in cases:
        response = create(client, auth, **body)
        assert response.status_code == 422, (body, response.text)
        assert reason in response.text, (body, response.text)


def test_audit_canaries_from_a_dataset(client, auth):
    dataset = upload(client, auth, dataset_bytes(30), "dataset", "pool.jsonl").json()["id"]
    body = {"kind": "audit", "dataset": dataset, "count": 20, "labels": LABELS, "seed": 5}
    response = create(client, auth, **body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["template"] is None and created["n_inserted"] == len(created["records"])
    texts = {json.loads(line)["text"] for line in dataset_bytes(30).decode().splitlines()}
    revealed = client.get(
        f"/v1/canary-sets/{created['id']}", params={"reveal": True}, headers=auth
    ).json()
    assert all(c["text"] in texts and c["secret"] is None for c in revealed["canaries"])
    assert all(c["text"] is None for c in created["canaries"])
    too_many = create(client, auth, **{**body, "count": 31})
    assert too_many.status_code == 422 and "distinct texts" in too_many.text
