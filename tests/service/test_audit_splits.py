"""Audit splits: the service's fair coin decides membership, an audit naming the split uses
exactly its members and non-members, and a tenant sees only its own splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.splits.service import coin_key, draw_membership
from attacks.data import Record
from tests.utils.factories import LABELS, TEXTS, jsonl, new_key, upload


def candidates(n: int = 200) -> list[dict]:
    return [
        {"id": f"c{i}", "text": f"{TEXTS[i % 4]} number {i}", "label": LABELS[i % 4]}
        for i in range(n)
    ]


def upload_candidates(client, auth, records: list[dict]) -> str:
    response = upload(client, auth, jsonl(records), "dataset", "candidates.jsonl")
    assert response.status_code == 201, response.text
    return response.json()["id"]


def create(client, auth, **body):
    return client.post("/v1/audit-splits", json=body, headers=auth)


def side(client, auth, split_id: str, name: str) -> list[dict]:
    response = client.get(f"/v1/audit-splits/{split_id}/{name}.jsonl", headers=auth)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_a_split_partitions_the_candidates_by_the_seeded_coin(client, auth):
    records = candidates()
    dataset = upload_candidates(client, auth, records)
    response = create(client, auth, dataset=dataset, seed=7)
    assert response.status_code == 201, response.text
    split = response.json()
    assert response.headers["Location"] == f"/v1/audit-splits/{split['id']}"
    assert (split["seed"], split["seed_source"], split["inclusion_probability"]) == (
        7,
        "client",
        0.5,
    )
    members, non_members = (
        side(client, auth, split["id"], "members"),
        side(client, auth, split["id"], "non_members"),
    )
    member_ids, non_member_ids = {r["id"] for r in members}, {r["id"] for r in non_members}
    assert member_ids.isdisjoint(non_member_ids)
    assert member_ids | non_member_ids == {r["id"] for r in records}
    assert (split["n_members"], split["n_non_members"], split["n_candidates"]) == (
        len(members),
        len(non_members),
        200,
    )
    # Each record unchanged, and membership exactly the stored seed's coin.
    by_id = {r["id"]: r for r in records}
    assert all(r == by_id[r["id"]] for r in members + non_members)
    coin = draw_membership(
        [Record(text=r["text"], label=r["label"], id=r["id"]) for r in records], 7
    )
    assert member_ids == {r["id"] for r, m in zip(records, coin, strict=True) if m}
    # The members side is an ordinary dataset artifact of the tenant.
    artifact = client.get(f"/v1/artifacts/{split['members']}", headers=auth).json()
    assert artifact["kind"] == "dataset" and artifact["meta"]["n_records"] == len(members)
    assert client.get(f"/v1/audit-splits/{split['id']}", headers=auth).json() == split


def test_without_a_seed_the_service_draws_one(client, auth):
    dataset = upload_candidates(client, auth, candidates(60))
    first, second = (create(client, auth, dataset=dataset).json() for _ in range(2))
    assert first["seed_source"] == second["seed_source"] == "service"
    assert first["seed"] != second["seed"]


def test_copies_of_one_text_share_one_coin(client, auth):
    records = candidates(100)
    records += [
        {"id": f"dup{i}", "text": "  " + records[i]["text"].upper() + " ", "label": "card"}
        for i in range(0, 100, 5)
    ]
    dataset = upload_candidates(client, auth, records)
    split = create(client, auth, dataset=dataset, seed=3).json()
    member_ids = {r["id"] for r in side(client, auth, split["id"], "members")}
    for i in range(0, 100, 5):
        assert (f"c{i}" in member_ids) == (f"dup{i}" in member_ids)


def test_the_coin_is_fair():
    """Over 20,000 distinct records the member share lies within 4 standard errors of 1/2."""
    records = [Record(text=f"record {i}", label=None, id=str(i)) for i in range(20_000)]
    for seed in (0, 1, 2):
        share = draw_membership(records, seed).mean()
        assert abs(share - 0.5) < 4 * np.sqrt(0.25 / len(records))
    assert coin_key(Record(text="A  b", label="x", id="1")) == coin_key(
        Record(text="a b", label="y", id="2")
    )


def test_an_audit_naming_the_split_uses_exactly_its_halves(client, auth, uploaded):
    from app.audits.models import Audit
    from app.core.db import session_scope

    split = create(client, auth, dataset=upload_candidates(client, auth, candidates()), seed=11)
    split = split.json()
    spec = {"model": {"name": "m"}, "target": uploaded["target"], "split": split["id"]}
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 202, response.text
    read = response.json()
    assert (read["split"], read["membership_source"]) == (split["id"], "service")
    with session_scope() as db_session:
        stored = db_session.get(Audit, read["id"]).spec
    assert (stored["members"], stored["non_members"]) == (split["members"], split["non_members"])
    assert (stored["split"], stored["membership_source"]) == (split["id"], "service")
    # Files the pipeline chose are "pipeline", and naming both is refused.
    plain = client.post("/v1/audits", json={"model": {"name": "m"}, **uploaded}, headers=auth)
    assert plain.json()["membership_source"] == "pipeline" and plain.json()["split"] is None
    both = client.post("/v1/audits", json={**spec, "members": uploaded["members"]}, headers=auth)
    assert both.status_code == 422 and "a split gives members and non-members" in both.text
    missing = client.post("/v1/audits", json={**spec, "split": "nope"}, headers=auth)
    assert missing.status_code == 422 and "no audit split 'nope'" in missing.text


def test_other_tenants_cannot_see_or_use_a_split(client, auth, uploaded, model_body):
    split = create(client, auth, dataset=upload_candidates(client, auth, candidates(40)), seed=1)
    split_id = split.json()["id"]
    other = {"Authorization": f"Bearer {new_key()}"}
    assert client.get(f"/v1/audit-splits/{split_id}", headers=other).status_code == 404
    for name in ("members", "non_members"):
        url = f"/v1/audit-splits/{split_id}/{name}.jsonl"
        assert client.get(url, headers=other).status_code == 404
    assert client.get(f"/v1/audit-splits/{split_id}").status_code == 401
    target = upload(client, other, model_body, "model", "tiny.tar.gz").json()["id"]
    spec = {"model": {"name": "m"}, "target": target, "split": split_id}
    response = client.post("/v1/audits", json=spec, headers=other)
    assert response.status_code == 422 and f"no audit split {split_id!r}" in response.text
    # Nor split another tenant's dataset.
    assert create(client, other, dataset=uploaded["members"]).status_code == 422


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"dataset": "nope"}, "no dataset artifact 'nope'"),
        ({"dataset": "x", "inclusion_probability": 0.3}, "inclusion_probability"),
        ({"dataset": "x", "seed": -1}, "seed"),
        ({"dataset": "x", "extra": 1}, "extra"),
    ],
)
def test_bad_split_requests_are_422(client, auth, body, needle):
    response = create(client, auth, **body)
    assert response.status_code == 422 and needle in response.text


def test_a_model_or_a_single_record_cannot_be_split(client, auth, uploaded):
    model = create(client, auth, dataset=uploaded["target"])
    assert model.status_code == 422 and "no dataset artifact" in model.text
    one = create(client, auth, dataset=upload_candidates(client, auth, candidates(1)))
    assert one.status_code == 422 and "on one side" in one.text
