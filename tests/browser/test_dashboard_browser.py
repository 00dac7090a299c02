"""The dashboard in a real headless browser: login, list, audit page, live progress, tenants."""

from __future__ import annotations

import re

import pytest

from tests.utils.audits import advance, build_report, claim, succeed
from tests.utils.browser import needs_chromium, screenshot
from tests.utils.factories import new_key

# The browser adds nothing a second backend would check: PostgreSQL, as in production.
pytestmark = [
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
    needs_chromium,
    pytest.mark.slow,  # a browser and a live server
]


def submit(api, uploaded: dict[str, str], name: str, version: str, **extra) -> str:
    spec = {"model": {"name": name, "version": version}, **uploaded, **extra}
    response = api.post("/v1/audits", json=spec)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def log_in(page, live_url: str, key: str) -> None:
    page.goto(f"{live_url}/dashboard")
    assert page.url.endswith("/dashboard/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/dashboard")


def finished_audit(api, uploaded, name="fraud-model", version="1", shift=3.0, claim_eps=0.5):
    audit_id = submit(api, uploaded, name, version, dp_claim={"epsilon": claim_eps})
    claim(audit_id, progress=0.5, stage="scoring")
    report = build_report({"loss": shift, "confidence": shift / 3}, claim_epsilon=claim_eps)
    succeed(audit_id, report)
    return audit_id, report


def test_list_and_audit_page_render_api_audits(page, live_url, api, api_key, uploaded):
    earlier, _ = finished_audit(api, uploaded, version="0", shift=1.0, claim_eps=8.0)
    done, report = finished_audit(api, uploaded)
    queued = submit(api, uploaded, "fraud-model", "2")
    log_in(page, live_url, api_key)

    rows = page.locator("tr[data-audit-id]")
    assert rows.count() == 3
    assert page.locator(f'tr[data-audit-id="{queued}"] [data-role=state]').inner_text() == "queued"
    done_row = page.locator(f'tr[data-audit-id="{done}"]')
    assert done_row.locator(".badge-violation").inner_text() == "violation"
    assert f"{max(a.auc for a in report.attacks):.3f}" in done_row.inner_text()
    screenshot(page, "list")

    done_row.get_by_role("link", name="Details →").click()
    page.wait_for_url(f"{live_url}/dashboard/audits/{done}")
    assert page.locator(".badge-violation.badge-large").inner_text() == "violation"
    assert "leaks more than its privacy claim allows" in page.locator(".headline").inner_text()
    roc = page.locator("svg.roc-chart")
    assert roc.is_visible()
    assert roc.locator("path.roc").count() == len(report.attacks)
    assert roc.locator("line.chance").count() == 1
    legend = roc.text_content() or ""
    assert all(a.name in legend for a in report.attacks) and "chance" in legend
    box = roc.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 200
    assert page.locator("svg.epsilon-chart rect.over-claim").count() >= 1
    screenshot(page, "audit")

    page.get_by_role("link", name="All audits of fraud-model").click()
    page.wait_for_url(re.compile(r".*/dashboard/models/fraud-model$"))
    assert page.locator("svg.trend-chart").count() == 4
    # One dot per succeeded version on each chart; v1 leaks more than v0, so its AUC dot is higher.
    dots = page.locator("svg.trend-chart").first.locator("circle")
    assert dots.count() == 2
    assert float(dots.nth(1).get_attribute("cy") or 0) < float(dots.nth(0).get_attribute("cy") or 0)
    assert page.locator(f'a[href="/dashboard/audits/{earlier}"]').count() == 1
    assert page.locator(f'a[href="/dashboard/audits/{queued}"]').count() == 1
    screenshot(page, "model")


def test_running_audit_progress_updates_without_reload(page, live_url, api, api_key, uploaded):
    audit_id = submit(api, uploaded, "live-model", "1")
    claim(audit_id, progress=0.2, stage="scoring members")
    log_in(page, live_url, api_key)
    row = f'tr[data-audit-id="{audit_id}"]'
    assert page.locator(f"{row} .stage").inner_text() == "20% · scoring members"
    assert page.get_attribute("html", "data-live") == "on"
    page.evaluate("window.__sameDocument = true")

    advance(audit_id, 0.7, "attacking")
    page.wait_for_function(
        "sel => document.querySelector(sel + ' progress')?.value > 0.69",
        arg=row,
        timeout=10_000,
    )
    assert page.locator(f"{row} .stage").inner_text() == "70% · attacking"
    screenshot(page, "list-running")

    succeed(audit_id, build_report({"loss": 1.0}, claim_epsilon=8.0))
    page.wait_for_selector(f'{row}[data-state="succeeded"]', timeout=10_000)
    assert page.locator(f"{row} .badge-consistent").inner_text() == "consistent"
    assert page.locator(f"{row} progress").count() == 0
    # Updated in place: the page was never reloaded.
    assert page.evaluate("window.__sameDocument") is True


def test_audit_page_follows_progress_and_shows_report_when_done(
    page, live_url, api, api_key, uploaded
):
    audit_id = submit(api, uploaded, "live-model", "2")
    claim(audit_id, progress=0.1, stage="loading")
    log_in(page, live_url, api_key)
    page.goto(f"{live_url}/dashboard/audits/{audit_id}")
    page.evaluate("window.__sameDocument = true")
    advance(audit_id, 0.6, "scoring")
    page.wait_for_function(
        "() => document.querySelector('section[data-audit-id] progress')?.value > 0.59",
        timeout=10_000,
    )
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "audit-running")
    # Once it ends, the page reloads itself into the report.
    succeed(audit_id, build_report({"loss": 1.0}, claim_epsilon=8.0))
    page.wait_for_selector("svg.roc-chart", timeout=10_000)
    assert page.locator(".badge-consistent.badge-large").count() == 1


def test_without_javascript_pages_reload_instead(chromium, live_url, api, api_key, uploaded):
    audit_id = submit(api, uploaded, "static-model", "1")
    claim(audit_id, progress=0.3, stage="scoring")
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, live_url, api_key)
        row = f'tr[data-audit-id="{audit_id}"]'
        assert page.locator(f"{row} .stage").inner_text() == "30% · scoring"
        advance(audit_id, 0.8, "attacking")
        # The <noscript> refresh reloads the list every few seconds.
        for _ in range(40):
            page.wait_for_timeout(250)
            if page.locator(f"{row} .stage").inner_text() == "80% · attacking":
                break
        assert page.locator(f"{row} .stage").inner_text() == "80% · attacking"
    finally:
        context.close()


def test_second_tenant_cannot_open_first_tenants_audit(page, live_url, api, uploaded):
    audit_id, _ = finished_audit(api, uploaded, name="private-model")
    log_in(page, live_url, new_key())
    assert page.locator(f'tr[data-audit-id="{audit_id}"]').count() == 0
    assert "private-model" not in page.content()

    response = page.goto(f"{live_url}/dashboard/audits/{audit_id}")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Audit not found"
    assert "violation" not in page.content()
    screenshot(page, "other-tenant")
    for path in (f"/dashboard/audits/{audit_id}/report.json", "/dashboard/models/private-model"):
        response = page.goto(f"{live_url}{path}")
        assert response is not None and response.status == 404
    progress = page.evaluate(
        "id => fetch('/dashboard/progress?id=' + id).then(r => r.json())", audit_id
    )
    assert progress == {"audits": []}
