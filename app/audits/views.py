"""HTTP routes for audits. Thin: rules live in app.audits.service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from app.api.deps import CurrentTenant, Offset, SessionDep
from app.api.errors import API_ERRORS, error_responses
from app.audits import service
from app.audits.compare import AuditComparison, compare
from app.audits.enums import AuditState
from app.audits.schemas import AuditPage, AuditRead, AuditSpec
from app.policies.enums import GateResult
from app.reporting.html import render_html
from app.reporting.junit import render_junit
from app.reporting.markdown import render_markdown
from attacks.enums import VerdictStatus
from attacks.report import LeakageReport

router = APIRouter(prefix="/v1/audits", tags=["audits"], responses=API_ERRORS)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=AuditRead)
def submit_audit(
    spec: AuditSpec, tenant: CurrentTenant, db_session: SessionDep, response: Response
) -> AuditRead:
    """Queue an audit. Returns 202 with `Location` to poll."""
    audit = service.submit(db_session=db_session, tenant=tenant, spec=spec)
    response.headers["Location"] = f"/v1/audits/{audit.id}"
    return service.to_read(audit)


@router.get("", response_model=AuditPage)
def list_audits(
    tenant: CurrentTenant,
    db_session: SessionDep,
    model_name: str | None = None,
    state: AuditState | None = None,
    verdict: Annotated[str | None, Query(pattern=f"^({'|'.join(VerdictStatus)})$")] = None,
    gate: GateResult | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> AuditPage:
    items, total = service.get_all(
        db_session=db_session,
        tenant=tenant,
        model_name=model_name,
        state=state,
        verdict=verdict,
        gate=gate,
        limit=limit,
        offset=offset,
    )
    return AuditPage(
        items=[service.to_read(a) for a in items], total=total, limit=limit, offset=offset
    )


@router.get("/{audit_id}", response_model=AuditRead, responses=error_responses(404))
def get_audit(audit_id: str, tenant: CurrentTenant, db_session: SessionDep) -> AuditRead:
    return service.to_read(
        service.get_or_404(db_session=db_session, tenant=tenant, audit_id=audit_id)
    )


RENDERERS = {
    "md": (render_markdown, "text/markdown; charset=utf-8", "md"),
    "html": (render_html, "text/html; charset=utf-8", "html"),
    "junit": (render_junit, "application/xml", "xml"),
}


@router.get("/{audit_id}/report", response_model=None, responses=error_responses(404, 409))
def get_report(
    audit_id: str,
    tenant: CurrentTenant,
    db_session: SessionDep,
    format: Annotated[
        Literal["json", "md", "html", "junit"], Query(description="json is the stored report")
    ] = "json",
) -> dict[str, Any] | Response:
    """The leakage report (schema in attacks.report.LeakageReport), or a rendering of it with
    the gate: Markdown for a pull-request comment, standalone HTML, JUnit XML for CI.
    409 until the audit succeeds."""
    audit = service.get_or_404(db_session=db_session, tenant=tenant, audit_id=audit_id)
    report = service.require_report(db_session=db_session, audit=audit)
    if format == "json":
        return report.body
    render, media_type, suffix = RENDERERS[format]
    text = render(service.to_read(audit), LeakageReport.model_validate(report.body))
    return Response(
        text,
        media_type=media_type,
        headers={"Content-Disposition": f'inline; filename="{audit_id}.{suffix}"'},
    )


@router.get(
    "/{audit_id}/compare/{other_id}",
    response_model=AuditComparison,
    responses=error_responses(404, 409),
)
def compare_audits(
    audit_id: str, other_id: str, tenant: CurrentTenant, db_session: SessionDep
) -> AuditComparison:
    """What changed from audit `audit_id` to audit `other_id` (delta = other - this):
    verdict, gate, each attack's AUC and TPR, the epsilon bound, utility and canaries.
    404 unless both audits are yours; 409 unless both succeeded."""
    return compare(db_session=db_session, tenant=tenant, audit_id=audit_id, other_id=other_id)


@router.get("/{audit_id}/records.csv", response_class=Response, responses=error_responses(404, 409))
def get_records_at_risk(audit_id: str, tenant: CurrentTenant, db_session: SessionDep) -> Response:
    """The members the strongest attack singles out, as CSV (text only if the spec allowed it)."""
    audit = service.get_or_404(db_session=db_session, tenant=tenant, audit_id=audit_id)
    report = service.require_report(db_session=db_session, audit=audit)
    return Response(
        service.records_csv(report.body),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{audit_id}-records.csv"'},
    )


@router.post(
    "/{audit_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AuditRead,
    responses=error_responses(404, 409),
)
def cancel_audit(audit_id: str, tenant: CurrentTenant, db_session: SessionDep) -> AuditRead:
    audit = service.get_or_404(db_session=db_session, tenant=tenant, audit_id=audit_id)
    return service.to_read(service.cancel(db_session=db_session, audit=audit))
