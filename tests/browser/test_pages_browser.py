"""Pages that decide at a glance, in a real browser: the phone list and audit page keep verdict
and gate on screen, histograms and slices render, chart labels stay inside their charts, and
two versions of a model compare side by side. Screenshots go to test-output/."""

from __future__ import annotations

import pytest

from tests.utils.audits import build_report, claim, succeed
from tests.utils.browser import needs_chromium, screenshot

pytestmark = [
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
    needs_chromium,
    pytest.mark.slow,  # a browser and a live server
]

PHONE = {"width": 390, "height": 844}

# Every <text> of every chart on the page whose drawn box leaves its SVG's viewBox.
CLIPPED_LABELS = """() => {
  const out = [];
  for (const svg of document.querySelectorAll('svg')) {
    const frame = svg.getBoundingClientRect();
    for (const text of svg.querySelectorAll('text')) {
      const b = text.getBoundingClientRect();
      if (b.left < frame.left - 0.5 || b.right > frame.right + 0.5 ||
          b.top < frame.top - 0.5 || b.bottom > frame.bottom + 0.5)
        out.push(svg.getAttribute('class') + ': ' + text.textContent);
    }
  }
  return out;
}"""


def submit(api, uploaded: dict[str, str], name: str, version: str, **extra) -> str:
    spec = {"model": {"name": name, "version": version}, **uploaded, **extra}
    response = api.post("/v1/audits", json=spec)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def finished(api, uploaded, version: str, shift: float, claim_eps: float) -> str:
    audit_id = submit(
        api, uploaded, "checkout-intent-classifier", version, dp_claim={"epsilon": claim_eps}
    )
    claim(audit_id)
    shifts = {"loss": shift, "confidence": shift}  # coinciding curves on purpose
    succeed(audit_id, build_report(shifts, claim_epsilon=claim_eps, sliced=True))
    return audit_id


def log_in(page, live_url: str, key: str) -> None:
    page.goto(f"{live_url}/dashboard")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/dashboard")


def inside_width(locator, width: int) -> None:
    box = locator.bounding_box()
    assert box is not None, "not rendered"
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, box


def test_phone_list_and_audit_page_keep_verdict_and_gate_visible(
    chromium, live_url, api, api_key, uploaded
):
    audit_id = finished(api, uploaded, "1", shift=3.0, claim_eps=0.5)
    submit(api, uploaded, "checkout-intent-classifier", "2")  # queued: no verdict yet
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    try:
        page = context.new_page()
        log_in(page, live_url, api_key)
        screenshot(page, "phone-list")
        row = page.locator(f'tr[data-audit-id="{audit_id}"]')
        for role in ("verdict", "gate"):
            cell = row.locator(f'[data-role="{role}"] .badge')
            assert cell.is_visible()
            inside_width(cell, PHONE["width"])
        assert row.locator('[data-role="verdict"]').inner_text() == "violation"
        inside_width(row.locator("a.details-link"), PHONE["width"])
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

        page.goto(f"{live_url}/dashboard/audits/{audit_id}")
        header = page.locator("section[data-audit-id] .header-row")
        for badge in (".badge-violation", "[class*=badge-gate-]"):
            inside_width(header.locator(badge).first, PHONE["width"])
        inside_width(page.locator(".badge-violation.badge-large"), PHONE["width"])
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "phone-audit")
    finally:
        context.close()


def test_audit_page_draws_histograms_slices_and_unclipped_charts(
    page, live_url, api, api_key, uploaded
):
    audit_id = finished(api, uploaded, "1", shift=1.0, claim_eps=0.5)
    log_in(page, live_url, api_key)
    page.goto(f"{live_url}/dashboard/audits/{audit_id}")

    histograms = page.locator("svg.histogram-chart")
    assert histograms.count() == 2
    for i in range(2):
        chart = histograms.nth(i)
        assert chart.is_visible() and chart.locator("rect.member").count() >= 5
        assert chart.locator("path.non-member").count() == 1
    worst = page.locator("tr.slice-row.most-vulnerable")
    assert worst.count() == 1 and worst.get_attribute("data-value") == "2"
    assert worst.is_visible() and "most vulnerable" in worst.inner_text()
    assert page.locator('tr.slice-row[data-feature="correctness"]').count() == 2

    # Loss and confidence coincide here: two dash patterns, markers on both.
    roc = page.locator("svg.roc-chart")
    dashes = {roc.locator("path.roc").nth(i).get_attribute("data-dash") for i in range(2)}
    assert len(dashes) == 2
    assert roc.locator(".marker-circle").count() >= 1 and roc.locator(".marker-square").count() >= 1

    assert page.evaluate(CLIPPED_LABELS) == []
    assert "unresolved" in page.locator("table").first.inner_text()
    page.locator("section.histograms").screenshot(path=_shot("histograms"))
    page.locator("section.slices").screenshot(path=_shot("slices"))
    screenshot(page, "audit-decide")


def test_model_page_links_a_comparison_of_two_versions(page, live_url, api, api_key, uploaded):
    older = finished(api, uploaded, "1", shift=0.3, claim_eps=8.0)
    newer = finished(api, uploaded, "2", shift=3.0, claim_eps=0.5)
    log_in(page, live_url, api_key)
    page.goto(f"{live_url}/dashboard/models/checkout-intent-classifier")
    assert page.evaluate(CLIPPED_LABELS) == []
    page.get_by_role("link", name="vs previous").click()
    page.wait_for_url(f"{live_url}/dashboard/compare?a={older}&b={newer}")
    sides = page.locator("section.compare-side")
    assert sides.count() == 2
    assert "v1" in sides.nth(0).inner_text() and "v2" in sides.nth(1).inner_text()
    changes = page.locator("section.changes li")
    texts = [changes.nth(i).inner_text() for i in range(changes.count())]
    assert any(t.startswith("AUC of loss rose") for t in texts)
    assert page.locator('tr[data-attack="loss"] .delta-worse').count() >= 1
    screenshot(page, "compare")


def _shot(name: str) -> str:
    from tests.utils.browser import SCREENSHOTS

    SCREENSHOTS.mkdir(exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")
