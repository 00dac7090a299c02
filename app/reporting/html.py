"""The audit as one standalone HTML file: styles and the dashboard's charts inline, nothing
fetched."""

from __future__ import annotations

from markupsafe import Markup

from app.audits.schemas import AuditRead
from app.presentation.histogram_svg import histogram_svg
from app.presentation.report_view import epsilon_chart, roc_chart, slices_view
from app.presentation.templating import environment
from app.reporting import common
from app.reporting.common import RECORDS_SHOWN
from attacks.report import LeakageReport


def _inline(chart: Markup | None) -> Markup | None:
    """Inline SVG in HTML needs no namespace; dropping it keeps the file free of any URL."""
    if chart is None:
        return None
    return Markup(chart.replace(' xmlns="http://www.w3.org/2000/svg"', "", 1))


def render_html(audit: AuditRead, report: LeakageReport) -> str:
    return (
        environment()
        .get_template("report.html")
        .render(
            audit=audit,
            report=report,
            title=common.title(audit),
            gate_label=common.gate_label(audit),
            columns=common.fpr_columns(report),
            has_unresolved=any(not p.resolved for a in report.attacks for p in a.tpr_at_fpr),
            epsilon_line=common.epsilon_line(report),
            evidence=common.evidence_lines(report),
            claim_source=common.claim_source(report),
            canary_lines=common.canary_lines(report),
            chart=_inline(roc_chart(report.attacks)),
            epsilon_chart=_inline(epsilon_chart(report)),
            # histogram_svg escapes every piece of text it writes.
            histograms=[_inline(Markup(histogram_svg(h))) for h in report.score_histograms],
            slices=slices_view(report),
            records=report.records_at_risk[:RECORDS_SHOWN],
        )
    )
