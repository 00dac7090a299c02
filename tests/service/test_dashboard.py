"""The web dashboard on both backends: cookie login, the audit list, a report page, cancel.

Audits are submitted through the real API; a succeeded one gets a report computed by the
attacks library on synthetic scores and stored through the real state machine, so the page
is tested against exactly what a worker would write.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from markupsafe import escape

from app.dashboard.roc_svg import Curve, LogLogFrame, roc_svg, tick_label
from tests.utils.audits import build_report, claim_and_succeed, submit
from tests.utils.dashboard import SVG_NS, dashboard_post, login
from tests.utils.factories import new_key


def test_bad_key_is_401_and_sets_no_cookie(client):
    for key in ("lg_not-a-key", ""):
        response = dashboard_post(
            client, "/dashboard/login", data={"api_key": key}, follow_redirects=False
        )
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        assert 'name="api_key"' in response.text
        assert 'role="alert"' in response.text
    assert "leakgate_key" not in client.cookies
    assert (
        "Unknown or revoked API key"
        in dashboard_post(client, "/dashboard/login", data={"api_key": "lg_not-a-key"}).text
    )


def test_pages_need_a_valid_cookie(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard"
    for method, path in (
        ("GET", "/dashboard"),
        ("GET", "/dashboard/audits/abc"),
        ("GET", "/dashboard/audits/abc/report.json"),
        ("GET", "/dashboard/audits/abc/report.html"),
        ("POST", "/dashboard/audits/abc/cancel"),
    ):
        response = client.request(method, path, follow_redirects=False)
        assert response.status_code == 303, (method, path)
        assert response.headers["location"] == "/dashboard/login"
    client.cookies.set("leakgate_key", "lg_forged")
    response = client.get("/dashboard", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/login"
    login_page = client.get("/dashboard/login")
    assert login_page.status_code == 200 and 'action="/dashboard/login"' in login_page.text


def test_login_lists_api_audit_then_logout(client, auth, api_key, uploaded):
    audit_id = submit(client, auth, uploaded)
    response = dashboard_post(
        client, "/dashboard/login", data={"api_key": api_key}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("leakgate_key=")
    assert "httponly" in cookie and "samesite=strict" in cookie

    page = client.get("/dashboard")
    assert page.status_code == 200
    assert f'href="/dashboard/audits/{audit_id}"' in page.text
    assert "tiny" in page.text and "badge-queued" in page.text
    assert "<progress" in page.text and "waiting for a worker" in page.text
    # A queued audit on the page: it reloads itself.
    assert '<meta http-equiv="refresh" content="2">' in page.text

    other_model = client.get("/dashboard", params={"model_name": "someone-else"})
    assert audit_id not in other_model.text and "No audits match" in other_model.text
    by_state = client.get("/dashboard", params={"state": "queued", "model_name": "tiny"})
    assert audit_id in by_state.text
    by_verdict = client.get("/dashboard", params={"verdict": "violation"})
    assert audit_id not in by_verdict.text

    response = dashboard_post(client, "/dashboard/logout", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/login"
    assert "leakgate_key" not in client.cookies
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_empty_list_explains_how_to_audit(client, api_key):
    login(client, api_key)
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert "No audits yet" in page.text
    assert "leakgate audit --model" in page.text and "--non-members" in page.text
    assert "--wait" in page.text
    assert 'http-equiv="refresh"' not in page.text


def test_pagination_keeps_newest_first(client, auth, api_key, uploaded):
    ids = [submit(client, auth, uploaded) for _ in range(3)]
    login(client, api_key)
    first = client.get("/dashboard", params={"limit": 2})
    assert ids[2] in first.text and ids[1] in first.text and ids[0] not in first.text
    assert first.text.index(ids[2]) < first.text.index(ids[1])
    assert "offset=2" in first.text
    second = client.get("/dashboard", params={"limit": 2, "offset": 2})
    assert ids[0] in second.text and ids[1] not in second.text


def test_other_tenants_audit_is_404(client, auth, uploaded):
    audit_id = submit(client, auth, uploaded)
    login(client, new_key())
    for response in (
        client.get(f"/dashboard/audits/{audit_id}"),
        client.get(f"/dashboard/audits/{audit_id}/report.json"),
        client.get(f"/dashboard/audits/{audit_id}/report.html"),
        dashboard_post(client, f"/dashboard/audits/{audit_id}/cancel", follow_redirects=False),
        client.get("/dashboard/audits/no-such-audit"),
    ):
        assert response.status_code == 404
        assert "Audit not found" in response.text
    assert audit_id not in client.get("/dashboard").text
    # The other tenant's attempt to cancel changed nothing.
    assert client.get(f"/v1/audits/{audit_id}", headers=auth).json()["state"] == "queued"


def test_cancel_from_dashboard(client, auth, api_key, uploaded):
    audit_id = submit(client, auth, uploaded)
    login(client, api_key)
    detail = client.get(f"/dashboard/audits/{audit_id}")
    assert detail.status_code == 200
    assert f'action="/dashboard/audits/{audit_id}/cancel"' in detail.text
    assert 'http-equiv="refresh"' in detail.text

    response = dashboard_post(
        client, f"/dashboard/audits/{audit_id}/cancel", follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/dashboard/audits/{audit_id}")
    assert client.get(f"/v1/audits/{audit_id}", headers=auth).json()["state"] == "cancelled"

    detail = client.get(response.headers["location"])
    assert "Audit cancelled." in detail.text and "badge-cancelled" in detail.text
    assert "/cancel" not in detail.text and 'http-equiv="refresh"' not in detail.text
    again = dashboard_post(client, f"/dashboard/audits/{audit_id}/cancel")
    assert again.status_code == 200 and "already ended" in again.text


def test_succeeded_audit_shows_the_report(client, auth, api_key, uploaded):
    from attacks.report import RecordAtRisk

    audit_id = submit(client, auth, uploaded, dp_claim={"epsilon": 0.5})
    risky = RecordAtRisk(
        rank=1,
        record_id="line-7",
        sha256="ab" * 32,
        score=4.2,
        flagged_at_fpr=0.0,
        attack="loss",
        label="card",
        text="<script>alert(1)</script>",
    )
    report = build_report(
        {"loss": 3.0, "confidence": 1.0}, claim_epsilon=0.5, records_at_risk=[risky]
    )
    assert report.verdict.status == "violation"  # the synthetic leak is strong on purpose
    assert report.epsilon_lower_bound is not None
    claim_and_succeed(audit_id, report)
    login(client, api_key)

    page = client.get(f"/dashboard/audits/{audit_id}")
    assert page.status_code == 200
    html = page.text
    assert "badge-violation" in html and str(escape(report.verdict.explanation)) in html
    assert f"ε ≥ {report.epsilon_lower_bound.value:.2f}" in html
    assert "ε = 0.500" in html  # the claim, beside the bound
    for attack in report.attacks:
        assert f"<strong>{attack.name}</strong>" in html
        assert f"{attack.auc:.3f}" in html
        assert f"[{attack.auc_ci.low:.3f}, {attack.auc_ci.high:.3f}]" in html
    # 200 non-members cannot measure 0.1% FPR: said so instead of a headline 0.0%.
    assert "Not resolved" in html and "unresolved" in html and "&lt; 1,000 non-members" in html
    assert "TPR @ 0.1% FPR" in html and "TPR @ 10% FPR" in html
    assert 'http-equiv="refresh"' not in html and "/cancel" not in html
    assert f'href="/dashboard/audits/{audit_id}/report.json"' in html
    # Records at risk are listed, their text escaped.
    assert "line-7" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html

    svg = re.search(r"<svg.*?</svg>", html, re.DOTALL)
    assert svg is not None
    root = ET.fromstring(svg.group(0))
    paths = root.findall(f".//{SVG_NS}path[@class='roc']")
    assert len(paths) == len(report.attacks) == html.count('<path class="roc"')
    # One score histogram per attack besides the ROC chart.
    assert html.count('class="histogram-chart"') == len(report.attacks)

    listed = client.get("/dashboard").text
    assert "badge-violation" in listed and f"{max(a.auc for a in report.attacks):.3f}" in listed
    assert 'http-equiv="refresh"' not in listed


def test_report_download_equals_api_report(client, auth, api_key, uploaded):
    audit_id = submit(client, auth, uploaded)
    login(client, api_key)
    early = client.get(f"/dashboard/audits/{audit_id}/report.json")
    assert early.status_code == 409

    report = build_report({"loss": 1.5}, claim_epsilon=10.0)
    claim_and_succeed(audit_id, report)
    download = client.get(f"/dashboard/audits/{audit_id}/report.json")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/json")
    assert "attachment" in download.headers["content-disposition"]
    api = client.get(f"/v1/audits/{audit_id}/report", headers=auth)
    assert api.status_code == 200
    assert download.json() == api.json()
    csv_download = client.get(f"/dashboard/audits/{audit_id}/records.csv")
    assert (
        csv_download.status_code == 200
        and "attachment" in csv_download.headers["content-disposition"]
    )
    assert csv_download.text == client.get(f"/v1/audits/{audit_id}/records.csv", headers=auth).text
    html_download = client.get(f"/dashboard/audits/{audit_id}/report.html")
    assert "attachment" in html_download.headers["content-disposition"]
    api_html = client.get(f"/v1/audits/{audit_id}/report", params={"format": "html"}, headers=auth)
    assert html_download.text == api_html.text and "<svg" in html_download.text


def test_unreadable_stored_report_is_explained_not_500(client, auth, api_key, uploaded):
    audit_id = submit(client, auth, uploaded)
    claim_and_succeed(
        audit_id, {"schema_version": 99}, verdict="no-claim", auc=0.5, epsilon_lower_bound=0.0
    )
    login(client, api_key)
    page = client.get(f"/dashboard/audits/{audit_id}")
    assert page.status_code == 200
    assert "does not match the schema" in page.text and "<svg" not in page.text


def test_frame_maps_log_scale_inside_the_plot_area():
    frame = LogLogFrame(x_min=1e-3, y_min=1e-2, left=50, right=450, top=10, bottom=310)
    assert frame.x(1e-3) == pytest.approx(50) and frame.x(1.0) == pytest.approx(450)
    assert frame.y(1e-2) == pytest.approx(310) and frame.y(1.0) == pytest.approx(10)
    # Log scale: 0.01 lies halfway between 0.001 and 0.1 horizontally.
    assert frame.x(0.01) == pytest.approx((frame.x(0.001) + frame.x(0.1)) / 2)
    assert frame.y(0.1) == pytest.approx((frame.y(0.01) + frame.y(1.0)) / 2)
    # Out-of-range points (FPR 0 on a log axis, rounding above 1) are clipped to the edges.
    assert frame.x(0.0) == 50 and frame.x(1.5) == 450
    assert frame.y(0.0) == 310 and frame.y(float("nan")) == 310


def test_roc_svg_has_one_path_per_curve_inside_the_plot():
    curves = [
        Curve(
            "loss <b>", fpr=[0.0, 0.0, 0.001, 0.01, 0.5, 1.0], tpr=[0.0, 0.2, 0.3, 0.5, 0.9, 1.0]
        ),
        Curve("confidence", fpr=[0.0, 0.1, 1.0], tpr=[0.0, 0.1, 1.0]),
    ]
    root = ET.fromstring(roc_svg(curves, n_members=500, n_non_members=1000))
    plot = root.find(f"{SVG_NS}rect[@class='plot-area']")
    assert plot is not None
    left, top = float(plot.get("x", "")), float(plot.get("y", ""))
    right, bottom = left + float(plot.get("width", "")), top + float(plot.get("height", ""))
    paths = root.findall(f"{SVG_NS}path")
    assert len(paths) == 2
    for path in paths:
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", path.get("d", ""))]
        xs, ys = numbers[0::2], numbers[1::2]
        assert xs and all(left <= x <= right for x in xs)
        assert all(top <= y <= bottom for y in ys)
    # The first curve's FPR-0 points sit on the left edge; its last point is the top-right.
    first = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", paths[0].get("d", ""))]
    assert first[0] == pytest.approx(left, abs=0.1)
    assert (first[-2], first[-1]) == pytest.approx((right, top), abs=0.1)
    texts = "".join(root.itertext())
    assert "loss <b>" in texts  # escaped in the markup, intact once parsed
    for label in ("0.1%", "1%", "10%", "100%"):
        assert label in texts
    chance = root.find(f"{SVG_NS}line[@class='chance']")
    assert chance is not None and float(chance.get("x2", "")) == pytest.approx(right, abs=0.1)


def test_tick_labels_read_as_percentages():
    assert [tick_label(10.0**k) for k in range(-4, 1)] == ["0.01%", "0.1%", "1%", "10%", "100%"]
