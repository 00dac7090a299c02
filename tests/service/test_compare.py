"""Comparing two audits: the API's deltas and sentences, its one error path, the page."""

from __future__ import annotations

import pytest

from tests.utils.audits import build_report, claim_and_succeed, submit
from tests.utils.dashboard import login
from tests.utils.factories import new_key


def _two_versions(client, auth, uploaded) -> tuple[str, str]:
    v1 = submit(client, auth, uploaded, model={"name": "fraud", "version": "1"})
    v2 = submit(client, auth, uploaded, model={"name": "fraud", "version": "2"})
    claim_and_succeed(v1, build_report({"loss": 0.3, "confidence": 0.1}, claim_epsilon=8.0))
    claim_and_succeed(v2, build_report({"loss": 3.0, "confidence": 1.0}, claim_epsilon=0.5))
    return v1, v2


def test_compare_gives_deltas_per_attack_and_what_changed(client, auth, uploaded):
    v1, v2 = _two_versions(client, auth, uploaded)
    response = client.get(f"/v1/audits/{v1}/compare/{v2}", headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["a"]["id"], body["b"]["id"]) == (v1, v2) and body["same_model"]
    a = client.get(f"/v1/audits/{v1}/report", headers=auth).json()
    b = client.get(f"/v1/audits/{v2}/report", headers=auth).json()
    loss = next(d for d in body["attacks"] if d["attack"] == "loss")
    assert loss["auc"]["a"] == a["attacks"][0]["auc"] and loss["auc"]["b"] == b["attacks"][0]["auc"]
    assert loss["auc"]["delta"] == pytest.approx(loss["auc"]["b"] - loss["auc"]["a"])
    assert loss["auc"]["delta"] > 0.3
    # 200 non-members cannot measure 0.1% FPR: no number, so no delta, rather than 0 -> 0.
    assert loss["tpr_at_0_1pct_fpr"] == {"a": None, "b": None, "delta": None}
    assert body["claimed_epsilon"]["delta"] == pytest.approx(-7.5)
    assert body["verdict_changed"] == (a["verdict"]["status"] != b["verdict"]["status"])
    assert any(
        line.startswith("AUC of loss rose") and "(worse)" in line for line in body["changes"]
    )
    # The other way round, everything flips.
    back = client.get(f"/v1/audits/{v2}/compare/{v1}", headers=auth).json()
    back_loss = next(d for d in back["attacks"] if d["attack"] == "loss")
    assert back_loss["auc"]["delta"] == pytest.approx(-loss["auc"]["delta"])
    same = client.get(f"/v1/audits/{v1}/compare/{v1}", headers=auth).json()
    assert same["changes"] == ["Nothing changed beyond noise: same verdict, gate and numbers."]


def test_compare_needs_two_succeeded_audits_of_the_tenant(client, auth, uploaded):
    v1, _ = _two_versions(client, auth, uploaded)
    queued = submit(client, auth, uploaded)
    running = client.get(f"/v1/audits/{v1}/compare/{queued}", headers=auth)
    assert running.status_code == 409 and "only succeeded audits" in running.json()["detail"]
    missing = client.get(f"/v1/audits/{v1}/compare/{'0' * 32}", headers=auth)
    assert missing.status_code == 404
    stranger = {"Authorization": f"Bearer {new_key()}"}
    assert client.get(f"/v1/audits/{v1}/compare/{v1}", headers=stranger).status_code == 404


def test_compare_page_and_the_model_pages_link(client, auth, api_key, uploaded):
    v1, v2 = _two_versions(client, auth, uploaded)
    login(client, api_key)
    model = client.get("/dashboard/models/fraud").text
    link = f'href="/dashboard/compare?a={v1}&amp;b={v2}"'
    assert link in model and model.count('class="compare-link') == 1
    page = client.get(f"/dashboard/compare?a={v1}&b={v2}")
    assert page.status_code == 200
    assert "What changed" in page.text and 'data-attack="loss"' in page.text
    assert "AUC of loss rose" in page.text
    assert client.get(f"/dashboard/compare?a={v1}&b={'0' * 32}").status_code == 404
    assert client.get(f"/dashboard/compare?a={v1}").status_code == 422
