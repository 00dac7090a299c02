"""The canary exposure-gap rule: gated by bits, not measured without exposure, set by the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app.policies.gate import evaluate
from app.policies.schemas import PolicyRules
from tests.utils.audits import build_report, claim_and_succeed, submit


def _with_canaries(inserted: float | None, held_out: float | None) -> dict:
    body = build_report({"loss": 0.2}, claim_epsilon=50.0).model_dump(mode="json")
    body["canaries"] = {
        "summary": {
            "canary_set": "cs1",
            "kind": "secret",
            "n_inserted": 8,
            "n_held_out": 8,
            "mean_exposure_inserted": inserted,
            "mean_exposure_held_out": held_out,
            "n_extracted_inserted": 0,
            "n_extracted_held_out": 0,
        },
        "canaries": [],
    }
    return body


@pytest.mark.parametrize(
    ("inserted", "held_out", "limit", "status"),
    [(9.0, 1.0, 3.0, "fail"), (2.5, 1.0, 3.0, "pass"), (4.0, 1.0, 3.0, "pass")],
)
def test_exposure_gap_is_gated_in_bits(inserted, held_out, limit, status):
    gate, reasons = evaluate(
        PolicyRules(max_canary_exposure_gap=limit), _with_canaries(inserted, held_out)
    )
    reason = next(r for r in reasons if r.rule == "max_canary_exposure_gap")
    assert reason.status == status and gate == status
    assert reason.measured == pytest.approx(inserted - held_out)
    assert f"{inserted - held_out:.2f} bits" in reason.message


def test_exposure_gap_is_not_measured_without_exposure():
    no_set = build_report({"loss": 0.2}, claim_epsilon=50.0).model_dump(mode="json")
    rules = PolicyRules(max_canary_exposure_gap=1.0)
    gate, reasons = evaluate(rules, no_set)
    reason = next(r for r in reasons if r.rule == "max_canary_exposure_gap")
    assert (reason.status, gate) == ("not_measured", "pass")
    assert "no canary set" in reason.message
    _, reasons = evaluate(rules, _with_canaries(None, None))
    reason = next(r for r in reasons if r.rule == "max_canary_exposure_gap")
    assert reason.status == "not_measured" and "no exposure" in reason.message


def test_stored_policy_gates_an_audit_and_reports_name_the_rule(client, auth, uploaded):
    put = client.put("/v1/policies/default", json={"max_canary_exposure_gap": 2.0}, headers=auth)
    assert put.status_code == 200, put.text
    bad = client.put("/v1/policies/default", json={"max_canary_exposure_gap": -1}, headers=auth)
    assert bad.status_code == 422 and "max_canary_exposure_gap" in bad.text
    audit_id = submit(client, auth, uploaded)
    claim_and_succeed(audit_id, _with_canaries(8.0, 1.5))
    audit = client.get(f"/v1/audits/{audit_id}", headers=auth).json()
    assert audit["gate"] == "fail"
    reason = next(r for r in audit["gate_reasons"] if r["rule"] == "max_canary_exposure_gap")
    assert reason["status"] == "fail" and reason["measured"] == pytest.approx(6.5)
    markdown = client.get(f"/v1/audits/{audit_id}/report?format=md", headers=auth)
    assert markdown.status_code == 200, markdown.text
    assert "maximum canary exposure gap (bits)" in markdown.text and "6.50 bits" in markdown.text
    assert "Exposure gap +6.50 bits" in markdown.text  # the canary section, in words


def test_cli_policy_set_sends_the_gap_limit(client, api_key, monkeypatch):
    """`leakgate policy set --max-canary-exposure-gap` through the real API, in process."""
    from app.cli import common
    from app.cli.main import app
    from app.client import LeakgateClient

    class InProcess(LeakgateClient):
        def __init__(self, server: str, key: str, **_: object) -> None:
            self.http = client
            self.http.headers["Authorization"] = f"Bearer {key}"

        def close(self) -> None:
            pass

    monkeypatch.setattr(common, "LeakgateClient", InProcess)
    result = CliRunner().invoke(
        app, ["policy", "set", "--max-canary-exposure-gap", "3.5", "--api-key", api_key]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rules"]["max_canary_exposure_gap"] == 3.5
    stored = client.get("/v1/policies/default").json()
    assert stored["rules"]["max_canary_exposure_gap"] == 3.5
