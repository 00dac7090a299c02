"""The HTTP API on both backends: uploads, specs, tenancy, lifecycle and refusals."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest
from sqlalchemy import func, select

from tests.utils.factories import dataset_bytes, new_key, tar_with, upload


def spec_for(ids: dict[str, str], **extra) -> dict:
    return {"model": {"name": "tiny", "version": "1"}, **ids, **extra}


def count_audits() -> int:
    from app.audits.models import Audit
    from app.core.db import session_scope

    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Audit))


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["database"] == "ok" and ready.json()["broker"] == "ok"


def test_no_key_or_bad_key_is_401(client):
    assert client.get("/v1/audits").status_code == 401
    bad = client.get("/v1/audits", headers={"Authorization": "Bearer lg_nope"})
    assert bad.status_code == 401


def test_model_upload_records_labels(client, auth, model_body):
    response = upload(client, auth, model_body, "model", "tiny.tar.gz")
    assert response.status_code == 201, response.text
    meta = response.json()["meta"]
    assert meta["labels"] == sorted(["balance", "transfer", "card", "loan"])
    assert meta["architectures"] == ["BertForSequenceClassification"]


def test_pickle_model_is_refused_with_how_to_convert(client, auth):
    pickle_bytes = b"\x80\x04\x95" + b"\x00" * 64
    response = upload(client, auth, pickle_bytes, "model", "pytorch_model.bin")
    assert response.status_code == 422
    assert "save_pretrained(folder, safe_serialization=True)" in response.json()["detail"]
    inside = tar_with({"config.json": b"{}", "pytorch_model.bin": pickle_bytes})
    response = upload(client, auth, inside, "model", "model.tar.gz")
    assert response.status_code == 422
    assert "pytorch_model.bin" in response.json()["detail"]


@pytest.mark.parametrize(
    ("entries", "symlink", "needle"),
    [
        ({"../evil.json": b"{}"}, None, "escapes"),
        ({"/abs/config.json": b"{}"}, None, "absolute"),
        ({"config.json": b"{}"}, "link.json", "link"),
        ({"config.json": b"{}", "modeling_evil.py": b"import os"}, None, "Python code"),
        ({"config.json": b"{}"}, None, "safetensors"),
    ],
)
def test_bad_archives_are_refused(client, auth, entries, symlink, needle):
    response = upload(client, auth, tar_with(entries, symlink=symlink), "model", "m.tar.gz")
    assert response.status_code == 422
    assert needle in response.json()["detail"]


def test_dataset_errors_name_the_problem(client, auth):
    response = upload(client, auth, b'{"label": "card"}\n', "dataset", "d.jsonl")
    assert response.status_code == 422
    assert '"text"' in response.json()["detail"] and "line 1" in response.json()["detail"]
    response = upload(client, auth, b"words,intent\nhello,x\n", "dataset", "d.csv")
    assert response.status_code == 422
    assert '"text"' in response.json()["detail"]
    good = dataset_bytes(5)
    response = upload(client, auth, good + b"{not json\n", "dataset", "d.jsonl")
    assert response.status_code == 422 and "line 6" in response.json()["detail"]


def test_oversize_upload_is_413_and_leaves_nothing(activate, set_env):
    from fastapi.testclient import TestClient

    from app.main import create_app

    set_env(LEAKGATE_MAX_UPLOAD_BYTES="1000")
    key = new_key()
    with TestClient(create_app(run_sweeper=False)) as client:
        storage = client.app.state.storage
        before = {p for p in storage.root.rglob("*") if p.is_file()}
        body = dataset_bytes(200)
        assert len(body) > 1000
        headers = {"Authorization": f"Bearer {key}"}
        response = upload(client, headers, body, "dataset", "big.jsonl")
        assert response.status_code == 413
        # Without a Content-Length header the byte counter must catch it mid-stream.
        response = client.post(
            "/v1/artifacts",
            params={"kind": "dataset", "filename": "big.jsonl"},
            content=iter([body[:600], body[600:]]),
            headers=headers,
        )
        assert response.status_code == 413
        after = {p for p in storage.root.rglob("*") if p.is_file()}
        assert after == before


def test_artifacts_page_like_audits(client, auth):
    """GET /v1/artifacts answers the same page object as GET /v1/audits."""
    names = [f"d{i}.jsonl" for i in range(3)]
    for i, name in enumerate(names):
        assert upload(client, auth, dataset_bytes(5, offset=i), "dataset", name).status_code == 201
    page = client.get("/v1/artifacts", params={"limit": 2, "offset": 1}, headers=auth).json()
    assert set(page) == {"items", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (3, 2, 1, 2)
    everything = client.get("/v1/artifacts", headers=auth).json()["items"]
    assert {a["filename"] for a in everything} == set(names)
    assert [a["id"] for a in everything[1:]] == [a["id"] for a in page["items"]]
    audits = client.get("/v1/audits", headers=auth).json()
    assert set(audits) == set(page)


def test_submit_poll_list_and_cancel(client, auth, uploaded):
    response = client.post("/v1/audits", json=spec_for(uploaded), headers=auth)
    assert response.status_code == 202, response.text
    audit = response.json()
    assert response.headers["Location"] == f"/v1/audits/{audit['id']}"
    polled = client.get(response.headers["Location"], headers=auth).json()
    assert polled["state"] == "queued" and polled["progress"] == 0.0
    listed = client.get("/v1/audits", params={"model_name": "tiny"}, headers=auth).json()
    assert audit["id"] in [a["id"] for a in listed["items"]]
    assert (
        client.get("/v1/audits", params={"model_name": "other"}, headers=auth).json()["total"] == 0
    )
    assert client.get(f"/v1/audits/{audit['id']}/report", headers=auth).status_code == 409
    cancelled = client.post(f"/v1/audits/{audit['id']}/cancel", headers=auth)
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert client.post(f"/v1/audits/{audit['id']}/cancel", headers=auth).status_code == 409
    by_state = client.get("/v1/audits", params={"state": "cancelled"}, headers=auth).json()
    assert [a["id"] for a in by_state["items"]] == [audit["id"]]


def test_dp_sgd_parameters_are_accounted_at_submit(client, auth, uploaded):
    from dp_accounting import dp_event
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant

    dp_sgd = {"noise_multiplier": 1.1, "sample_rate": 0.02, "epochs": 5}
    spec = spec_for(uploaded, dp_claim={"delta": 1e-5, "dp_sgd": dp_sgd})
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 202, response.text
    step = dp_event.PoissonSampledDpEvent(0.02, dp_event.GaussianDpEvent(1.1))
    epsilons = {}
    for name, accountant in (
        ("rdp", rdp_privacy_accountant.RdpAccountant()),
        ("pld", pld_privacy_accountant.PLDAccountant()),
    ):
        accountant.compose(step, 250)  # 5 epochs at q = 0.02
        epsilons[name] = accountant.get_epsilon(1e-5)
    # The claim is the tightest accountant's: PLD (or PRV, within 1%) beats RDP here.
    claimed = response.json()["claimed_epsilon"]
    assert claimed == pytest.approx(epsilons["pld"], rel=0.01) and claimed < epsilons["rdp"]
    stored = client.get(response.headers["location"], headers=auth).json()
    assert stored["claimed_epsilon"] == claimed
    bad = spec_for(uploaded, dp_claim={"delta": 1e-5, "dp_sgd": {**dp_sgd, "steps": 10}})
    response = client.post("/v1/audits", json=bad, headers=auth)
    assert response.status_code == 422 and "steps or epochs" in response.text


def test_other_tenant_sees_404(client, auth, uploaded):
    audit = client.post("/v1/audits", json=spec_for(uploaded), headers=auth).json()
    other = {"Authorization": f"Bearer {new_key()}"}
    assert client.get(f"/v1/audits/{audit['id']}", headers=other).status_code == 404
    assert client.get(f"/v1/artifacts/{uploaded['target']}", headers=other).status_code == 404
    assert client.post(f"/v1/audits/{audit['id']}/cancel", headers=other).status_code == 404
    # Another tenant cannot audit with these artifacts either, and nothing is stored.
    before = count_audits()
    response = client.post("/v1/audits", json=spec_for(uploaded), headers=other)
    assert response.status_code == 422 and "no artifact" in response.json()["detail"]
    assert count_audits() == before


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"target": "missing"}, "no artifact"),
        ({"swap": True}, "is a dataset, not a model"),
        ({"attacks": ["telepathy"]}, "unknown attack"),
        ({"surprise": 1}, "surprise"),
        ({"dp_claim": {"epsilon": -1}}, "epsilon"),
        ({"task": "predictions"}, "takes no target"),
        ({"attacks": ["loss", "lira"]}, "population"),
        ({"attacks": ["zlib"]}, "unknown attack"),
        ({"task": "causal-lm"}, "ForCausalLM"),
        ({"population": "missing", "attacks": ["rmia"]}, "population: no artifact"),
        ({"evaluation": "missing"}, "evaluation: no artifact"),
        ({"task": "causal-lm", "evaluation": "missing"}, "not for causal-lm"),
    ],
)
def test_bad_specs_are_422_and_store_nothing(client, auth, uploaded, change, needle):
    spec, change = spec_for(uploaded), dict(change)
    if change.pop("swap", False):
        spec["target"] = uploaded["members"]
    spec.update(change)
    before = count_audits()
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 422
    assert needle in response.text
    assert count_audits() == before


def test_unlabelled_records_are_refused_for_a_classifier(client, auth, uploaded):
    body = b'{"text": "hello there"}\n'  # fine for a language model, not for a classifier
    response = upload(client, auth, body, "dataset", "unlabelled.jsonl")
    assert response.status_code == 201 and response.json()["meta"]["missing_labels"] == 1
    spec = spec_for({**uploaded, "members": response.json()["id"]})
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 422 and "no label" in response.json()["detail"]


def test_labels_unknown_to_the_model_are_refused(client, auth, uploaded):
    body = b'{"text": "hello there", "label": "weather"}\n'
    other = upload(client, auth, body, "dataset", "odd.jsonl").json()["id"]
    response = client.post(
        "/v1/audits", json=spec_for({**uploaded, "members": other}), headers=auth
    )
    assert response.status_code == 422 and "weather" in response.json()["detail"]


def test_openapi_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/artifacts",
        "/v1/audits",
        "/v1/audits/{audit_id}",
        "/v1/audits/{audit_id}/report",
        "/v1/audits/{audit_id}/cancel",
    ):
        assert path in paths


def zip_with(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_archives_are_checked_too(client, auth):
    response = upload(client, auth, zip_with({"../../etc/cron.d/x.json": b"{}"}), "model", "m.zip")
    assert response.status_code == 422 and "escapes" in response.json()["detail"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("config.json")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    response = upload(client, auth, buf.getvalue(), "model", "m.zip")
    assert response.status_code == 422 and "link" in response.json()["detail"]


@pytest.mark.parametrize(
    ("setting", "value", "entries", "needle"),
    [
        (
            "LEAKGATE_MAX_ARCHIVE_ENTRIES",
            "2",
            {"a.json": b"{}", "b.json": b"{}", "c.json": b"{}"},
            "more than 2 entries",
        ),
        (
            "LEAKGATE_MAX_ARCHIVE_UNPACKED_BYTES",
            "1000",
            {"config.json": b" " * 5000},
            "unpacks to more than 1000 bytes",
        ),
    ],
)
def test_archive_limits(activate, set_env, setting, value, entries, needle):
    from fastapi.testclient import TestClient

    from app.main import create_app

    set_env(**{setting: value})
    headers = {"Authorization": f"Bearer {new_key()}"}
    with TestClient(create_app(run_sweeper=False)) as limited:
        for body in (tar_with(entries), zip_with(entries)):
            response = upload(limited, headers, body, "model", "m.tar.gz")
            assert response.status_code == 422
            assert needle in response.json()["detail"]
