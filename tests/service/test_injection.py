"""Injection through what tenants supply: Markdown in pull-request comments, formulas in CSV
downloads, and forms posted to the dashboard from another site."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

from tests.utils.audits import build_report
from tests.utils.dashboard import dashboard_post

HOSTILE_VERSION = (
    "1 — gate PASS\n## leakgate: approved — gate PASS\n| rule | pass |\n"
    "[details](https://evil.example/x) <img src=x onerror=alert(1)> **bold** `code`"
)


def _report():
    """A real report from the audit recipe (members' loss scores shifted by half an SD)."""
    return build_report({"loss": 0.5}, claim_epsilon=8.0, n=100)


def test_markdown_report_cannot_be_forged_by_the_model_version():
    from app.audits.schemas import AuditRead, ModelRef
    from app.reporting.markdown import render_markdown

    audit = AuditRead(
        id="a1",
        model=ModelRef(name="bank-intents", version=HOSTILE_VERSION),
        task="text-classification",
        state="succeeded",
        progress=1.0,
        stage=None,
        error=None,
        cancel_requested=False,
        verdict="consistent",
        claimed_epsilon=8.0,
        auc=0.6,
        epsilon_lower_bound=None,
        gate="fail",
        gate_reasons=[],
        policy=None,
        created_at=datetime.now(UTC),
        started_at=None,
        finished_at=None,
        links={},
    )
    text = render_markdown(audit, _report())
    lines = text.splitlines()
    heading = lines[0]
    assert heading.startswith("## leakgate: bank-intents 1 — gate PASS \\#\\# leakgate")
    assert heading.endswith("gate FAIL")
    assert [line for line in lines if line.startswith("#")] == [heading]
    assert not any(line.startswith("| rule | pass") for line in lines)
    # No live link, HTML, emphasis or code span: each special character is escaped.
    for raw, escaped in (
        ("[details]", r"\[details\]"),
        ("<img", r"\<img"),
        ("**bold**", r"\*\*bold\*\*"),
        ("`code`", r"\`code\`"),
    ):
        assert escaped in heading
        assert re.search(r"(?<!\\)" + re.escape(raw), heading) is None, raw


def test_records_csv_cells_cannot_become_spreadsheet_formulas():
    from app.audits.service import records_csv

    hostile = ['=HYPERLINK("https://evil.example")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    body = {
        "records_at_risk": [
            {
                "rank": i,
                "record_id": text,
                "score": -0.5,
                "attack": "loss",
                "label": text,
                "text": text,
            }
            for i, text in enumerate(hostile)
        ]
        + [{"rank": 9, "record_id": "r9", "score": 1.5, "attack": "loss", "text": "plain = ok"}]
    }
    rows = list(csv.DictReader(io.StringIO(records_csv(body))))
    for row, text in zip(rows, hostile, strict=False):
        for column in ("record_id", "label", "text"):
            assert row[column] == "'" + text, (column, row[column])
        assert row["score"] == "-0.5"  # numbers stay numbers
    assert rows[-1]["text"] == "plain = ok" and rows[-1]["label"] == ""


def _csrf(client) -> str:
    return client.cookies["leakgate_csrf"]


def test_dashboard_forms_carry_a_token_and_refuse_forged_posts(client, auth, api_key, uploaded):
    audit_id = client.post(
        "/v1/audits", json={"model": {"name": "m"}, **uploaded}, headers=auth
    ).json()["id"]
    login_page = client.get("/dashboard/login")
    assert f'name="csrf_token" value="{_csrf(client)}"' in login_page.text
    # Login itself needs the token (no login CSRF).
    refused = client.post("/dashboard/login", data={"api_key": api_key}, follow_redirects=False)
    assert refused.status_code == 403 and "leakgate_key" not in client.cookies
    assert dashboard_post(client, "/dashboard/login", data={"api_key": api_key}).status_code == 200

    detail = client.get(f"/dashboard/audits/{audit_id}")
    token = _csrf(client)
    assert detail.text.count(f'name="csrf_token" value="{token}"') == 2  # cancel and logout
    cancel = f"/dashboard/audits/{audit_id}/cancel"
    for data, headers in (
        ({}, {}),  # no token
        ({"csrf_token": "x" * 43}, {}),  # a wrong token
        ({"csrf_token": token}, {"Origin": "https://evil.example"}),
        ({"csrf_token": token}, {"Origin": "null"}),
        ({"csrf_token": token}, {"Referer": "https://evil.example/page"}),
    ):
        response = client.post(cancel, data=data, headers=headers, follow_redirects=False)
        assert response.status_code == 403, (data, headers)
        assert "text/html" in response.headers["content-type"]
    assert client.get(f"/v1/audits/{audit_id}", headers=auth).json()["state"] == "queued"
    assert client.post("/dashboard/logout", follow_redirects=False).status_code == 403
    assert "leakgate_key" in client.cookies

    same_site = {"Origin": "http://testserver"}
    response = client.post(
        cancel, data={"csrf_token": token}, headers=same_site, follow_redirects=False
    )
    assert response.status_code == 303
    assert client.get(f"/v1/audits/{audit_id}", headers=auth).json()["state"] == "cancelled"
    response = client.post(
        "/dashboard/logout", data={"csrf_token": token}, headers=same_site, follow_redirects=False
    )
    assert response.status_code == 303 and "leakgate_key" not in client.cookies
