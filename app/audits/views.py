"""HTTP routes for audits. Thin: rules live in app.audits.service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status

from app.api.deps import CurrentTenant, SessionDep
from app.audits import service
from app.audits.models import Audit
from app.audits.schemas import AuditPage, AuditRead, AuditSpec, AuditState
from app.tenants.models import Tenant

router = APIRouter(prefix="/v1/audits", tags=["audits"])


def _audit_or_404(db_session, tenant: Tenant, audit_id: str) -> Audit:
    audit = service.get(db_session=db_session, tenant=tenant, audit_id=audit_id)
    if audit is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no audit {audit_id}")
    return audit


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=AuditRead)
def submit_audit(
    spec: AuditSpec, tenant: CurrentTenant, db_session: SessionDep, response: Response
) -> AuditRead:
    """Queue an audit. Returns 202 with `Location` to poll."""
    try:
        audit = service.submit(db_session=db_session, tenant=tenant, spec=spec)
    except service.SpecRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    response.headers["Location"] = f"/v1/audits/{audit.id}"
    return service.to_read(audit)


@router.get("", response_model=AuditPage)
def list_audits(
    tenant: CurrentTenant,
    db_session: SessionDep,
    model_name: str | None = None,
    state: AuditState | None = None,
    verdict: Annotated[str | None, Query(pattern="^(consistent|violation|no-claim)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditPage:
    items, total = service.get_all(
        db_session=db_session,
        tenant=tenant,
        model_name=model_name,
        state=state,
        verdict=verdict,
        limit=limit,
        offset=offset,
    )
    return AuditPage(
        items=[service.to_read(a) for a in items], total=total, limit=limit, offset=offset
    )


@router.get("/{audit_id}", response_model=AuditRead)
def get_audit(audit_id: str, tenant: CurrentTenant, db_session: SessionDep) -> AuditRead:
    return service.to_read(_audit_or_404(db_session, tenant, audit_id))


@router.get("/{audit_id}/report")
def get_report(audit_id: str, tenant: CurrentTenant, db_session: SessionDep) -> dict[str, Any]:
    """The leakage report (schema in attacks.report.LeakageReport); 409 until the audit succeeds."""
    audit = _audit_or_404(db_session, tenant, audit_id)
    report = service.get_report(db_session=db_session, audit=audit)
    if report is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"audit {audit_id} has no report: it is {audit.state}"
            + (f" ({audit.error})" if audit.error else ""),
        )
    return report.body


@router.get("/{audit_id}/records.csv", response_class=Response)
def get_records_at_risk(audit_id: str, tenant: CurrentTenant, db_session: SessionDep) -> Response:
    """The members the strongest attack singles out, as CSV (text only if the spec allowed it)."""
    audit = _audit_or_404(db_session, tenant, audit_id)
    report = service.get_report(db_session=db_session, audit=audit)
    if report is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"audit {audit_id} has no report yet")
    return Response(
        service.records_csv(report.body),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{audit_id}-records.csv"'},
    )


@router.post("/{audit_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=AuditRead)
def cancel_audit(audit_id: str, tenant: CurrentTenant, db_session: SessionDep) -> AuditRead:
    audit = _audit_or_404(db_session, tenant, audit_id)
    try:
        audit = service.cancel(db_session=db_session, audit=audit)
    except service.SpecRejected as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return service.to_read(audit)
