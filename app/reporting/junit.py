"""The release gate as JUnit XML: one test case per policy rule, so CI shows it as tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from app.audits.schemas import AuditRead
from app.reporting.common import title
from attacks.report import LeakageReport


def render_junit(audit: AuditRead, report: LeakageReport) -> str:
    """A failed rule is a `<failure>`, a rule the audit could not measure is `<skipped>`."""
    reasons = audit.gate_reasons
    failures = sum(r.status == "fail" for r in reasons)
    skipped = sum(r.status == "not_measured" for r in reasons)
    counts = {"tests": str(len(reasons)), "failures": str(failures), "errors": "0"}
    suites = ET.Element("testsuites", {"name": "leakgate", **counts})
    suite = ET.SubElement(
        suites,
        "testsuite",
        {
            "name": f"leakgate gate: {title(audit)}",
            "skipped": str(skipped),
            "timestamp": report.created_at.isoformat(),
            **counts,
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("audit_id", audit.id),
        ("gate", audit.gate or ""),
        ("verdict", report.verdict.status),
        ("policy", audit.policy.scope if audit.policy else "built-in"),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    classname = f"leakgate.gate.{audit.model.name}"
    for reason in reasons:
        case = ET.SubElement(suite, "testcase", classname=classname, name=reason.rule, time="0")
        if reason.status == "fail":
            failure = ET.SubElement(case, "failure", message=reason.message, type="gate")
            failure.text = reason.message
        elif reason.status == "not_measured":
            ET.SubElement(case, "skipped", message=reason.message)
        ET.SubElement(case, "system-out").text = reason.message
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
