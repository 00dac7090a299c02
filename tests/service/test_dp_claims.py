"""The DP claim through the API: the server accounts, once per parameters, and never trusts a
client's epsilon as an accountant's (issue 10, construction 1)."""

from __future__ import annotations

import pytest

from attacks.privacy.accounting import account_dpsgd, accounting_cache_info, resolve_claim
from attacks.report import DPSGDParameters

DP_SGD = {"noise_multiplier": 1.1, "sample_rate": 0.02, "steps": 1250}


def submit(client, auth, uploaded, **claim):
    spec = {"model": {"name": "dp"}, **uploaded, "dp_claim": claim}
    return client.post("/v1/audits", json=spec, headers=auth)


def stored_spec(audit_id: str) -> dict:
    from app.audits.models import Audit
    from app.core.db import session_scope

    with session_scope() as db_session:
        audit = db_session.get(Audit, audit_id)
        assert audit is not None
        return audit.spec


@pytest.mark.parametrize(
    "field, value",
    [
        ("accounted_epsilon", 3.67),
        ("accountant", "dp-accounting-pld"),
        ("accountants", [{"accountant": "opacus-rdp", "epsilon": 3.0, "note": ""}]),
    ],
)
def test_server_computed_fields_are_refused_by_name(client, auth, uploaded, field, value):
    response = submit(client, auth, uploaded, epsilon=4.0, dp_sgd=DP_SGD, **{field: value})
    assert response.status_code == 422
    assert f"{field} is computed by the server; remove it" in response.text
    assert client.get("/v1/audits", headers=auth).json()["total"] == 0  # nothing stored


def test_a_copied_report_claim_at_another_delta_is_refused(client, auth, uploaded):
    """A claim copied from a report accounted at delta 1e-5, resubmitted at 1e-9: refused as
    sent (output fields), and refused with the output fields removed (its epsilon is the
    1e-5 one, below what the parameters give at 1e-9)."""
    report_claim = resolve_claim(
        epsilon=None, delta=1e-5, dp_sgd=DPSGDParameters(**DP_SGD)
    ).model_dump(mode="json")
    copied = {**report_claim, "delta": 1e-9}
    del copied["max_record_occurrences"]
    refused = submit(client, auth, uploaded, **copied)
    assert refused.status_code == 422
    assert "accounted_epsilon is computed by the server" in refused.text
    stripped = {k: copied[k] for k in ("epsilon", "delta", "dp_sgd")}
    below = submit(client, auth, uploaded, **stripped)
    assert below.status_code == 422, below.text
    assert "below what the dp_sgd parameters give" in below.text
    assert "Leave epsilon out" in below.text


def test_a_dp_sgd_claim_gets_the_accountants_epsilon_at_its_delta(client, auth, uploaded):
    response = submit(client, auth, uploaded, delta=1e-9, dp_sgd=DP_SGD)
    assert response.status_code == 202, response.text
    direct = account_dpsgd(**DP_SGD, delta=1e-9)
    tightest = min(a.epsilon for a in direct if a.epsilon is not None)
    at_1e5 = min(a.epsilon for a in account_dpsgd(**DP_SGD, delta=1e-5) if a.epsilon is not None)
    assert response.json()["claimed_epsilon"] == pytest.approx(tightest)
    assert tightest > at_1e5  # a smaller delta costs epsilon: the old number would be wrong
    claim = stored_spec(response.json()["id"])["dp_claim"]
    assert claim["delta"] == 1e-9
    assert claim["accounted_epsilon"] == claim["epsilon"] == pytest.approx(tightest)
    assert {a["accountant"] for a in claim["accountants"]} == {a.accountant for a in direct}
    assert claim["max_record_occurrences"] == 1


def test_accounting_is_cached_and_the_worker_never_accounts(client, auth, uploaded, monkeypatch):
    params = {"noise_multiplier": 0.9, "sample_rate": 0.015, "steps": 700}
    first = submit(client, auth, uploaded, delta=1e-6, dp_sgd=params)
    assert first.status_code == 202, first.text
    before = accounting_cache_info()
    second = submit(client, auth, uploaded, delta=1e-6, dp_sgd=params)
    after = accounting_cache_info()
    assert second.status_code == 202
    assert (after["hits"], after["misses"]) == (before["hits"] + 1, before["misses"])
    assert second.json()["claimed_epsilon"] == first.json()["claimed_epsilon"]

    # The worker reads the stored, resolved claim: with every accountant broken it still loads.
    import attacks.privacy.accounting as accounting
    from app.audits.schemas import StoredAuditSpec

    def broken(*args, **kwargs):
        raise AssertionError("the worker ran an accountant")

    monkeypatch.setattr(accounting, "_account", broken)
    monkeypatch.setattr(accounting, "account_dpsgd", broken)
    spec = StoredAuditSpec.model_validate(stored_spec(first.json()["id"]))
    assert spec.dp_claim is not None
    assert spec.dp_claim.claimed_epsilon == first.json()["claimed_epsilon"]
    assert spec.dp_claim.epsilon_source == "accountant"


def test_declared_claims_and_group_size_are_kept(client, auth, uploaded):
    declared = submit(client, auth, uploaded, epsilon=2.5, delta=1e-6, max_record_occurrences=3)
    assert declared.status_code == 202, declared.text
    claim = stored_spec(declared.json()["id"])["dp_claim"]
    assert (claim["epsilon"], claim["accountant"], claim["accountants"]) == (2.5, None, [])
    assert claim["max_record_occurrences"] == 3
    for bad in (0, 1001):
        response = submit(client, auth, uploaded, epsilon=2.5, max_record_occurrences=bad)
        assert response.status_code == 422 and "max_record_occurrences" in response.text
    assert submit(client, auth, uploaded, delta=1e-5).status_code == 422  # nothing to check
