"""Pages and reports that decide at a glance: charts that keep their labels, curves that stay
apart, unresolved rates said so, the claim's source, canaries in words, histograms, slices."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from app.dashboard.chart_svg import CHAR_W, BoundBar, Series, epsilon_svg, trend_svg
from app.dashboard.roc_svg import Curve, roc_svg
from tests.utils.audits import build_report
from tests.utils.dashboard import SVG_NS, audit_read, render_audit_page


def _texts(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG_NS}text")


def _extent(text: ET.Element, size: float) -> tuple[float, float]:
    """Estimated horizontal extent of an SVG text element (its own text, not its title)."""
    x = float(text.get("x", "0"))
    width = CHAR_W * size / 12 * len(text.text or "")
    anchor = text.get("text-anchor", "start")
    start = x - {"start": 0, "middle": width / 2, "end": width}[anchor]
    return start, start + width


def test_epsilon_chart_keeps_long_labels_and_the_claim_inside():
    width = 720
    bars = [
        BoundBar("confidence-calibrated (steinke-one-run)", 2.4, 0.95),
        BoundBar("loss (fdp-one-run)", 0.7, 0.95),
    ]
    # A claim at the axis end used to have its label cut at the right edge.
    root = ET.fromstring(epsilon_svg(bars, claimed=2.6, width=width))
    for text in _texts(root):
        start, end = _extent(text, float(text.get("font-size", "12")))
        assert start >= 0 and end <= width + 1, text.text
    labels = [t for t in _texts(root) if (t.findtext(f"{SVG_NS}title") or "").startswith("conf")]
    assert labels, "the full label stays in a tooltip"


def test_trend_chart_titles_and_end_labels_stay_inside():
    width = 360
    svg = trend_svg(
        "Privacy-utility: accuracy by claimed epsilon, every version",
        ["v2024.11.01-rc1", "v2", "v2024.12.24-final"],
        [Series("lower bound", [0.1, 0.2, 0.3]), Series("claimed", [1, 1, 1], dashed=True)],
        width=width,
    )
    root = ET.fromstring(svg)
    for text in _texts(root):
        start, end = _extent(text, float(text.get("font-size", "10")))
        assert start >= 0 and end <= width + 1, text.text
    title = root.find(f"{SVG_NS}text[@class='chart-title']")
    assert title is not None and float(title.get("font-size", "13")) < 13


def test_coinciding_roc_curves_stay_distinguishable():
    same = [0.0, 0.001, 0.01, 0.1, 0.5, 1.0], [0.0, 0.05, 0.2, 0.5, 0.8, 1.0]
    root = ET.fromstring(
        roc_svg(
            [Curve("loss", *same), Curve("confidence", *same)], n_members=1000, n_non_members=1000
        )
    )
    paths = root.findall(f"{SVG_NS}path[@class='roc']")
    assert len(paths) == 2
    # Same points, different dash patterns and marker shapes: both visible where they overlap.
    assert paths[0].get("data-dash") != paths[1].get("data-dash")
    shapes = {
        m.get("class") for m in root.iter() if "marker" in (m.get("class") or "").split(" ")[0:1]
    }
    assert {"marker marker-circle", "marker marker-square"} <= shapes
    # The legend repeats each curve's dash pattern.
    legend = root.findall(f"{SVG_NS}line[@class='legend-line']")
    assert [line.get("stroke-dasharray") for line in legend][:2] == [
        None,
        paths[1].get("stroke-dasharray"),
    ]


def test_audit_page_shows_histograms_slices_and_worst_class():
    from app.dashboard.report_view import build_report_view

    report = build_report({"loss": 0.5, "confidence": 0.2}, claim_epsilon=8.0, sliced=True)
    assert report.slices is not None and report.slices.most_vulnerable_class == "2"
    html = render_audit_page(build_report_view(report))
    assert html.count('class="histogram-chart"') == 2
    charts = re.findall(r'<svg[^>]*class="histogram-chart".*?</svg>', html, re.DOTALL)
    hist = ET.fromstring(charts[0])
    assert len(hist.findall(f"{SVG_NS}rect[@class='bin member']")) >= 5
    assert hist.find(f"{SVG_NS}path[@class='non-member']") is not None
    rows = re.findall(r'<tr class="slice-row[^"]*"[^>]*data-value="([^"]+)"', html)
    assert rows == ["0", "1", "2", "correct", "incorrect"]
    worst = re.findall(r'<tr class="slice-row most-vulnerable"[^>]*data-value="([^"]+)"', html)
    assert worst == ["2"]
    assert "Most vulnerable class" in html
    from app.reporting.markdown import render_markdown

    markdown = render_markdown(audit_read(), report)
    assert "Most vulnerable class: 2 (loss AUC" in markdown
    from app.reporting.html import render_html

    standalone = render_html(audit_read(), report)
    assert standalone.count('class="histogram-chart"') == 2
    assert "Most vulnerable class: <strong>2</strong>" in standalone
    assert "http" not in standalone.split("<body>", 1)[1].replace("http-equiv", "")


def test_unresolved_tpr_is_never_a_headline_zero():
    from app.dashboard.report_view import build_report_view
    from app.reporting.common import tpr_cell

    report = build_report({"loss": 0.3}, claim_epsilon=8.0, n=200)
    point = next(p for p in report.attacks[0].tpr_at_fpr if p.fpr == 0.001)
    assert not point.resolved
    assert tpr_cell(report.attacks[0], 0.001) == "unresolved (< 1,000 non-members)"
    html = render_audit_page(build_report_view(report))
    table = html[html.index("<h2>Attacks</h2>") : html.index("Advantage is the largest")]
    cells = re.findall(r'<td class="num">(.*?)</td>', table, re.DOTALL)
    low = cells[1]  # AUC first, then TPR at 0.1% FPR
    assert "unresolved" in low and "%" not in low.split("<span")[0]


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        ({"epsilon": 3.0}, "declared by the model's owner"),
        (
            {"dp_sgd": {"noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 1000}},
            "computed by the server from the DP-SGD parameters",
        ),
    ],
)
def test_the_claims_source_is_said_plainly(claim, expected):
    from markupsafe import escape

    from app.dashboard.report_view import build_report_view
    from attacks.privacy.accounting import resolve_claim
    from attacks.report import DPSGDParameters

    dp_sgd = DPSGDParameters(**claim["dp_sgd"]) if "dp_sgd" in claim else None
    resolved = resolve_claim(epsilon=claim.get("epsilon"), delta=1e-5, dp_sgd=dp_sgd)
    report = build_report({"loss": 0.5}, claim_epsilon=3.0)
    html = render_audit_page(build_report_view(report.model_copy(update={"dp_claim": resolved})))
    assert str(escape(expected)) in html and "as stated by" not in html


def test_canary_gap_is_interpreted_in_the_page_and_both_reports():
    from app.dashboard.report_view import build_report_view
    from app.reporting.common import canary_lines
    from app.reporting.html import render_html
    from app.reporting.markdown import render_markdown
    from attacks.report import CanaryReport, CanaryResult, CanarySummary

    def with_gap(inserted: float, held_out: float):
        summary = CanarySummary(
            canary_set="cs1",
            kind="secret",
            n_inserted=2,
            n_held_out=2,
            mean_exposure_inserted=inserted,
            mean_exposure_held_out=held_out,
            n_extracted_inserted=1,
            n_extracted_held_out=0,
            candidate_space=10_000,
        )
        rows = [
            CanaryResult(id=f"c{i}", inserted=i < 2, repetitions=1, score=float(i))
            for i in range(4)
        ]
        report = build_report({"loss": 0.5}, claim_epsilon=8.0)
        return report.model_copy(update={"canaries": CanaryReport(summary=summary, canaries=rows)})

    strong, none = with_gap(11.0, 1.0), with_gap(1.3, 1.0)
    assert "Strong memorisation" in canary_lines(strong)[0]
    assert "1,024 times higher" in canary_lines(strong)[0]
    assert "No sign of memorisation" in canary_lines(none)[0]
    assert "13.3 bits" in canary_lines(strong)[0]  # log2(10,000): full memorisation
    assert "1 of 2 inserted canaries recovered" in canary_lines(strong)[1]
    page = render_audit_page(build_report_view(strong))
    assert "Exposure gap +10.00 bits" in page
    audit = audit_read()
    markdown = render_markdown(audit, strong)
    assert "### Canaries (2 inserted, 2 held out)" in markdown
    assert "Strong memorisation" in markdown
    html = render_html(audit, strong)
    assert "<h2>Canaries</h2>" in html and "Strong memorisation" in html


def test_cli_summary_says_unresolved_instead_of_a_rate():
    from rich.console import Console

    from app.cli.summary import print_summary

    report = build_report({"loss": 0.3}, claim_epsilon=8.0, n=200).model_dump(mode="json")
    audit = audit_read().model_dump(mode="json")
    console = Console(record=True, width=200)
    print_summary(console, audit, report)
    text = console.export_text()
    row = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("loss"))
    assert "unresolved" in row
    assert "0.1% FPR needs 1,000" in text


def test_a_trend_with_only_unresolved_points_says_so():
    svg = trend_svg(
        "TPR at 0.1% FPR",
        ["v1", "v2"],
        [Series("members found", [None, None])],
        empty_note="unresolved: each audit had < 1,000 non-members",
    )
    root = ET.fromstring(svg)
    note = root.find(f"{SVG_NS}text[@class='empty-note']")
    assert note is not None and (note.text or "").startswith("unresolved")
    assert root.findall(f"{SVG_NS}circle") == []
