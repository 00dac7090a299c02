"""The dashboard's sortable list, live-progress endpoint, audit-page additions and model page.

Audits are submitted through the real API and finished through the real state machine
(`app.audits.lifecycle`, what a worker calls) with reports computed by the attacks library.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from app.dashboard.summary import key_numbers
from app.presentation.chart_svg import BoundBar, Series, epsilon_svg, nice_max, trend_svg
from tests.utils.audits import build_report, claim, claim_and_succeed, submit, succeed
from tests.utils.dashboard import SVG_NS, audit_read, login
from tests.utils.factories import new_key


def row_order(html: str, ids: list[str]) -> list[str]:
    """The given audit ids in the order their list rows appear."""
    found = re.findall(r'<tr data-audit-id="([^"]+)"', html)
    return [i for i in found if i in ids]


def test_list_sorts_filters_and_keeps_sort_in_pager(client, auth, api_key, uploaded):
    weak = submit(client, auth, uploaded, model={"name": "beta", "version": "1"})
    strong = submit(client, auth, uploaded, model={"name": "alpha", "version": "2"})
    queued = submit(client, auth, uploaded, model={"name": "gamma", "version": "1"})
    claim_and_succeed(weak, build_report({"loss": 0.5}, claim_epsilon=8.0))
    claim_and_succeed(strong, build_report({"loss": 3.0}, claim_epsilon=8.0))
    login(client, api_key)
    ids = [weak, strong, queued]

    def order(**params) -> list[str]:
        page = client.get("/dashboard", params=params)
        assert page.status_code == 200
        return row_order(page.text, ids)

    assert order() == [queued, strong, weak]
    assert order(sort="oldest") == [weak, strong, queued]
    # Audits without numbers (still queued) sort last, whatever the direction of the rest.
    assert order(sort="auc") == [strong, weak, queued]
    assert order(sort="epsilon") == [strong, weak, queued]
    assert order(sort="model") == [strong, weak, queued]
    assert order(sort="no-such-order") == [queued, strong, weak]
    assert order(sort="auc", state="succeeded") == [strong, weak]
    assert order(sort="auc", model_name="beta") == [weak]

    first = client.get("/dashboard", params={"sort": "auc", "limit": 1})
    assert "sort=auc" in first.text and "offset=1" in first.text
    assert row_order(first.text, ids) == [strong]
    assert '<option value="auc" selected>' in first.text


def test_list_filters_by_gate_and_keeps_it_in_the_pager(client, auth, api_key, uploaded):
    passed, failed = submit(client, auth, uploaded), submit(client, auth, uploaded)
    also_failed, queued = submit(client, auth, uploaded), submit(client, auth, uploaded)
    claim_and_succeed(passed, build_report({"loss": 0.5}, claim_epsilon=50.0))
    for audit_id in (failed, also_failed):
        claim_and_succeed(audit_id, build_report({"loss": 3.0}, claim_epsilon=0.5))
    gates = {
        i: client.get(f"/v1/audits/{i}", headers=auth).json()["gate"]
        for i in (passed, failed, also_failed, queued)
    }
    assert gates == {passed: "pass", failed: "fail", also_failed: "fail", queued: None}
    login(client, api_key)
    ids = [passed, failed, also_failed, queued]

    def shown(**params) -> set[str]:
        page = client.get("/dashboard", params=params)
        assert page.status_code == 200
        return set(row_order(page.text, ids))

    assert shown() == set(ids)
    assert shown(gate="pass") == {passed}
    assert shown(gate="fail") == {failed, also_failed}
    assert shown(gate="fail", state="queued") == set()
    assert shown(gate="maybe") == set(ids)  # an unknown value is ignored, like other filters

    first = client.get("/dashboard", params={"gate": "fail", "limit": 1})
    assert '<option value="fail" selected>' in first.text
    assert "gate=fail" in first.text and "offset=1" in first.text
    assert "Clear filters" in first.text


def test_list_shows_tpr_at_low_fpr_epsilon_vs_claim_and_model_link(client, auth, api_key, uploaded):
    resolved = submit(client, auth, uploaded, dp_claim={"epsilon": 0.5})
    small = submit(client, auth, uploaded, dp_claim={"epsilon": 0.5})
    report = build_report({"loss": 3.0}, claim_epsilon=0.5, n=1200)
    claim_and_succeed(resolved, report)
    claim_and_succeed(small, build_report({"loss": 3.0}, claim_epsilon=0.5, n=200))
    login(client, api_key)
    html = client.get("/dashboard").text
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<tr data-audit-id="([^"]+)".*?</tr>', html, re.DOTALL)
    }
    point = next(p for p in report.attacks[0].tpr_at_fpr if p.fpr == 0.001)
    assert point.resolved
    assert f"{point.tpr * 100:.1f}%" in rows[resolved] and "not resolved" not in rows[resolved]
    # 200 non-members cannot measure 0.1% FPR: the value carries the mark and its reason.
    assert "not resolved: 200 non-members" in rows[small]
    # The bound is above the claim: shown beside it and marked.
    assert 'class="over-claim"' in rows[resolved] and "claimed 0.500" in rows[resolved]
    assert 'href="/dashboard/models/tiny"' in rows[resolved]


def test_key_numbers_read_reports_defensively():
    body = build_report({"loss": 2.0, "confidence": 1.0}, claim_epsilon=1.0, n=1200).model_dump(
        mode="json"
    )
    numbers = key_numbers(body)
    best = max(p["tpr"] for a in body["attacks"] for p in a["tpr_at_fpr"] if p["fpr"] == 0.001)
    assert numbers.tpr_at_low_fpr == best and numbers.tpr_at_low_fpr_resolved
    assert numbers.n_non_members == 1200
    assert numbers.member_accuracy == 1.0 and numbers.non_member_accuracy == 0.75
    assert numbers.canaries_inserted is None
    # A report without the 0.1% point, and one with canaries (the canary branch's contract).
    for attack in body["attacks"]:
        attack["tpr_at_fpr"] = [p for p in attack["tpr_at_fpr"] if p["fpr"] != 0.001]
    body["canaries"] = {"summary": {"n_inserted": 50, "n_extracted_inserted": 3}, "canaries": []}
    numbers = key_numbers(body)
    assert numbers.tpr_at_low_fpr is None
    assert (numbers.canaries_extracted, numbers.canaries_inserted) == (3, 50)
    assert key_numbers(None).tpr_at_low_fpr is None
    assert key_numbers({"attacks": "garbage", "utility": 3}).member_accuracy is None


def test_progress_endpoint_follows_the_worker_and_is_tenant_scoped(client, auth, api_key, uploaded):
    audit_id = submit(client, auth, uploaded)
    assert client.get("/dashboard/progress", params={"id": audit_id}).status_code == 401
    login(client, api_key)
    page = client.get("/dashboard")
    assert '<script src="/dashboard/static/live.js" defer></script>' in page.text
    assert '<noscript><meta http-equiv="refresh"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = client.get("/dashboard/static/live.js")
    assert script.status_code == 200 and "/dashboard/progress" in script.text

    claim(audit_id, progress=0.4, stage="scoring members")
    item = client.get("/dashboard/progress", params={"id": audit_id}).json()["audits"][0]
    assert item["state"] == "running" and item["progress"] == pytest.approx(0.4)
    assert not item["final"] and "scoring members" in item["row_html"]
    assert item["row_html"].startswith(f'<tr data-audit-id="{audit_id}" data-state="running">')

    report = build_report({"loss": 3.0}, claim_epsilon=0.5)
    succeed(audit_id, report, verdict="violation")
    item = client.get("/dashboard/progress", params={"id": audit_id}).json()["audits"][0]
    assert item["final"] and item["verdict"] == "violation"
    assert "badge-violation" in item["row_html"] and "<progress" not in item["row_html"]

    # Another tenant asking for this id gets nothing back, as if it did not exist.
    login(client, new_key())
    other = client.get("/dashboard/progress", params=[("id", audit_id), ("id", "nope")])
    assert other.status_code == 200 and other.json() == {"audits": []}
    assert client.get("/dashboard/progress").status_code == 422


def test_audit_page_explains_verdict_with_timeline_and_epsilon_chart(
    client, auth, api_key, uploaded
):
    audit_id = submit(client, auth, uploaded, dp_claim={"epsilon": 0.5})
    report = build_report({"loss": 3.0, "confidence": 0.5}, claim_epsilon=0.5)
    claim_and_succeed(audit_id, report)
    login(client, api_key)
    html = client.get(f"/dashboard/audits/{audit_id}").text
    assert "The model leaks more than its privacy claim allows" in html
    assert "The strongest attack, loss" in html
    for step in ("Created", "Started", "Finished", "Stage"):
        assert f"<strong>{step}</strong>" in html
    assert "in the queue" in html and "of work" in html
    assert 'href="/dashboard/models/tiny"' in html
    assert f'href="/dashboard/audits/{audit_id}/records.csv"' in html

    svg = re.search(r'<svg[^>]*class="epsilon-chart".*?</svg>', html, re.DOTALL)
    assert svg is not None
    root = ET.fromstring(svg.group(0))
    bars = root.findall(f"{SVG_NS}rect")
    assert len(bars) == len(report.epsilon_bounds)
    over = [b for b in bars if "over-claim" in b.get("class", "")]
    assert len(over) == sum(b.value > 0.5 for b in report.epsilon_bounds) >= 1
    assert root.find(f"{SVG_NS}line[@class='claimed']") is not None
    # No canaries in this report, so no canary table.
    assert "<h2>Canaries</h2>" not in html


def render_detail(view, **context) -> str:
    """The audit page template, rendered with what the route would pass."""
    from app.dashboard.rendering import _env

    audit = context.pop("audit", None) or audit_read()
    base = dict(
        tenant=None,
        refresh_s=None,
        audit=audit,
        gate=None,
        gate_reasons=[],
        active=False,
        attempts=1,
        requested_attacks=["loss"],
        dp_claim=None,
        queued_for=0.5,
        duration=2.0,
        notice=None,
        view=view,
        report_error=None,
    )
    return _env.get_template("detail.html").render(**{**base, **context})


def test_release_gate_is_shown_when_the_read_model_has_it(activate):
    from app.dashboard.pages import ListRow
    from app.dashboard.rendering import _env
    from app.dashboard.summary import KeyNumbers
    from app.policies.schemas import GateReason

    reason = GateReason(
        rule="max_auc",
        status="fail",
        measured=0.91,
        limit=0.8,
        message="AUC 0.91 exceeds the policy's 0.80",
    )
    audit = audit_read(gate="fail", gate_reasons=[reason])
    html = render_detail(None, audit=audit, gate="fail", gate_reasons=audit.gate_reasons)
    assert "<h2>Release gate</h2>" in html and "badge-gate-fail" in html
    assert "<strong>max_auc</strong> · fail: AUC 0.91 exceeds the policy&#39;s 0.80" in html
    assert "Release gate" not in render_detail(None)
    row = ListRow(audit, KeyNumbers())
    assert row.gate == "fail"
    cells = _env.get_template("_audit_row.html").render(row=row)
    assert "gate fail" in cells and cells.count("<td") == 11


def test_plain_verdict_for_each_status():
    from app.presentation.report_view import plain_verdict
    from attacks.report import Verdict

    consistent = build_report({"loss": 1.0}, claim_epsilon=8.0, n=1200)
    assert consistent.verdict.status == "consistent"
    text = plain_verdict(consistent)
    assert text.startswith("Nothing measured contradicts the claim ε = 8.00")
    point = next(p for p in consistent.attacks[0].tpr_at_fpr if p.fpr == 0.001)
    assert f"finds {point.tpr * 100:.1f}% of members while flagging 0.1% of non-members" in text
    no_claim = consistent.model_copy(
        update={
            "verdict": Verdict(
                status="no-claim",
                claimed_epsilon=None,
                claimed_delta=None,
                epsilon_lower_bound=None,
                confidence=None,
                explanation="no claim",
            )
        }
    )
    assert plain_verdict(no_claim).startswith("No privacy claim was given")
    unbounded = consistent.model_copy(update={"epsilon_bounds": []})
    assert plain_verdict(unbounded).startswith("No attack produced a lower bound")


def test_canary_table_masks_secrets(activate):
    """The canary part is read by name (another branch adds it to the schema): render the
    audit page template with a report that carries it, in the agreed shape."""
    from app.presentation.report_view import build_report_view
    from attacks.report import LeakageReport

    class WithCanaries(LeakageReport):
        canaries: dict | None = None

    base = build_report({"loss": 1.0}, claim_epsilon=8.0).model_dump()
    base.pop("canaries", None)  # the schema's own (None) field; this test passes a dict
    canaries = {
        "summary": {
            "n_inserted": 2,
            "n_held_out": 1,
            "mean_exposure_inserted": 9.5,
            "mean_exposure_held_out": 1.25,
            "n_extracted_inserted": 1,
            "n_extracted_held_out": 0,
            "one_run_bound": None,
        },
        "canaries": [
            {
                "id": "c-1",
                "inserted": True,
                "repetitions": 4,
                "exposure": 17.0,
                "rank": 1,
                "extracted": True,
                "recovered": "4111 2222 3333 4444",
                "per_position_accuracy": 1.0,
            },
            {
                "id": "c-2",
                "inserted": True,
                "repetitions": 1,
                "exposure": 2.0,
                "rank": 900,
                "extracted": False,
                "recovered": None,
                "per_position_accuracy": 0.2,
            },
            {
                "id": "c-3",
                "inserted": False,
                "repetitions": 0,
                "exposure": 1.25,
                "rank": 4000,
                "extracted": False,
            },
        ],
    }
    view = build_report_view(WithCanaries(**base, canaries=canaries))
    assert view.canaries is not None and len(view.canaries.rows) == 3
    html = render_detail(view)
    assert "<h2>Canaries</h2>" in html
    assert "9.50 bits inserted, 1.25 bits held out" in html
    table = html[html.index("<h2>Canaries</h2>") : html.index("Recovered secrets stay hidden")]
    assert table.count("<tr") == 4 and "held out" in table
    # The secret is in the page only inside a closed <details>, never in plain view.
    secret = re.search(
        r"<details class=\"secret\"><summary>show</summary><code>(.*?)</code>", table
    )
    assert secret and secret.group(1) == "4111 2222 3333 4444"
    assert table.count("4111 2222 3333 4444") == 1 and " open" not in table


def test_model_page_shows_versions_over_time(client, auth, api_key, uploaded):
    v1 = submit(client, auth, uploaded, model={"name": "org/fraud", "version": "1"})
    v2 = submit(client, auth, uploaded, model={"name": "org/fraud", "version": "2"})
    other = submit(client, auth, uploaded, model={"name": "other", "version": "1"})
    running = submit(client, auth, uploaded, model={"name": "org/fraud", "version": "3"})
    claim_and_succeed(v1, build_report({"loss": 0.5}, claim_epsilon=8.0))
    claim_and_succeed(v2, build_report({"loss": 3.0}, claim_epsilon=8.0))
    login(client, api_key)

    page = client.get("/dashboard/models/org/fraud")
    assert page.status_code == 200
    html = page.text
    for audit_id in (v1, v2, running):
        assert f'href="/dashboard/audits/{audit_id}"' in html
    assert other not in html
    assert html.index(v1) < html.index(v2) < html.index(running)  # oldest first
    charts = re.findall(r'<svg[^>]*class="trend-chart".*?</svg>', html, re.DOTALL)
    assert len(charts) == 4
    auc_chart = ET.fromstring(charts[0])
    # One dot per succeeded audit; v2 leaks more, so its dot sits higher (smaller y).
    dots = auc_chart.findall(f"{SVG_NS}circle")
    assert len(dots) == 2
    assert float(dots[1].get("cy", "")) < float(dots[0].get("cy", ""))
    assert "v1" in "".join(auc_chart.itertext()) and "v2" in "".join(auc_chart.itertext())

    assert client.get("/dashboard/models/no-such-model").status_code == 404
    login(client, new_key())
    assert client.get("/dashboard/models/org/fraud").status_code == 404


def test_charts_scale_and_break_on_missing_values():
    assert [nice_max(v) for v in (0.07, 0.1, 0.11, 3.2, 7.0, 12.0)] == [
        0.1,
        0.1,
        0.2,
        5.0,
        10.0,
        20.0,
    ]
    root = ET.fromstring(
        epsilon_svg([BoundBar("loss", 2.0, 0.95), BoundBar("rmia <x>", 0.5, 0.95)], claimed=1.0)
    )
    bars = root.findall(f"{SVG_NS}rect")
    assert [b.get("class") for b in bars] == ["bound over-claim", "bound"]
    claimed = root.find(f"{SVG_NS}line[@class='claimed']")
    assert claimed is not None
    # The claim at 1.0 sits between the ends of the 0.5 and 2.0 bars.
    ends = [float(b.get("x", "")) + float(b.get("width", "")) for b in bars]
    assert ends[1] < float(claimed.get("x1", "")) < ends[0]
    assert "rmia <x>" in "".join(root.itertext())

    chart = ET.fromstring(
        trend_svg("t", ["v1", "v2", "v3", "v4"], [Series("s", [0.2, None, 0.5, 0.6])])
    )
    assert len(chart.findall(f"{SVG_NS}circle")) == 3
    # The gap at v2 splits the line: v3-v4 is the only segment with two points.
    assert len(chart.findall(f"{SVG_NS}path")) == 1


def test_privacy_utility_chart_orders_audits_by_claimed_epsilon():
    from app.dashboard.pages import ListRow
    from app.dashboard.summary import KeyNumbers
    from app.dashboard.trends import model_trends, privacy_utility

    def row(claim: float | None, accuracy: float | None) -> ListRow:
        audit = audit_read().model_copy(update={"claimed_epsilon": claim})
        return ListRow(audit, KeyNumbers(accuracy=accuracy))

    rows = [row(8.0, 0.9), row(1.0, 0.6), row(None, 0.95), row(4.0, None), row(2.0, 0.8)]
    chart = ET.fromstring(privacy_utility(rows))
    # A numeric epsilon axis: 1, 2 and 8 span less than 20x, so linear; no claim or no
    # accuracy: left out.
    assert chart.get("data-x-scale") == "linear"
    dots = chart.findall(f"{SVG_NS}circle")
    xs = [float(c.get("cx", "")) for c in dots]
    assert xs == sorted(xs) and len(xs) == 3
    # Distances follow the values: 1 -> 2 is a sixth of 2 -> 8, not one equal step.
    assert (xs[1] - xs[0]) * 6 == pytest.approx(xs[2] - xs[1], rel=0.01)
    heights = [float(c.get("cy", "")) for c in dots]
    assert heights == sorted(heights, reverse=True)  # accuracy rises with epsilon here
    assert privacy_utility(rows[:1]) is None
    assert len(model_trends(rows)) == 5
    wide = ET.fromstring(privacy_utility([row(0.1, 0.3), row(1.0, 0.6), row(10.0, 0.9)]))
    assert wide.get("data-x-scale") == "log"
    ticks = [t.text for t in wide.findall(f"{SVG_NS}text") if "x-tick" in (t.get("class") or "")]
    assert ticks == ["0.1", "1", "10"]
    wide_xs = [float(c.get("cx", "")) for c in wide.findall(f"{SVG_NS}circle")]
    assert wide_xs[1] - wide_xs[0] == pytest.approx(wide_xs[2] - wide_xs[1], rel=0.01)


def test_pages_and_reports_show_data_checks_blind_baseline_and_estimates():
    from app.presentation.report_view import build_report_view
    from tests.attacks.test_report_schema import _report

    view = build_report_view(_report())
    text = " ".join(view.evidence)
    assert "Data checks: 0 duplicate member(s), 0 duplicate non-member(s), 0 text(s)" in text
    assert "Blind baseline (no model): AUC" in text and "do not tell members" in text
    assert "Estimates (assume repeated training runs" in text
