"""Downloads from an audit's page: records at risk (CSV), the report as HTML and as JSON."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.deps import SessionDep
from app.audits import service
from app.audits.models import Audit, Report
from app.dashboard.rendering import DashboardTenant
from app.reporting.html import render_html
from app.tenants.models import Tenant
from attacks.report import LeakageReport

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def _stored_report(audit_id: str, tenant: Tenant, db_session: Session) -> tuple[Audit, Report]:
    """The audit and its stored report (NotFound / Conflict become the error page)."""
    audit = service.get_or_404(db_session=db_session, tenant=tenant, audit_id=audit_id)
    return audit, service.require_report(db_session=db_session, audit=audit)


def _download(content: str, media_type: str, filename: str) -> Response:
    """A file the browser saves rather than shows; never cached (it may hold record text)."""
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/dashboard/audits/{audit_id}/records.csv")
def records_csv(audit_id: str, tenant: DashboardTenant, db_session: SessionDep) -> Response:
    """Records at risk as `GET /v1/audits/{id}/records.csv` gives them, as a download."""
    _, stored = _stored_report(audit_id, tenant, db_session)
    return _download(service.records_csv(stored.body), "text/csv", f"{audit_id}-records.csv")


@router.get("/dashboard/audits/{audit_id}/report.html")
def report_html(audit_id: str, tenant: DashboardTenant, db_session: SessionDep) -> Response:
    """The standalone HTML report (`GET /v1/audits/{id}/report?format=html`), as a download."""
    audit, stored = _stored_report(audit_id, tenant, db_session)
    html = render_html(service.to_read(audit), LeakageReport.model_validate(stored.body))
    return _download(html, "text/html; charset=utf-8", f"leakgate-report-{audit_id}.html")


@router.get("/dashboard/audits/{audit_id}/report.json")
def report_json(audit_id: str, tenant: DashboardTenant, db_session: SessionDep) -> Response:
    """The stored report exactly as `GET /v1/audits/{id}/report` returns it, as a download."""
    _, stored = _stored_report(audit_id, tenant, db_session)
    return _download(
        json.dumps(stored.body), "application/json", f"leakgate-report-{audit_id}.json"
    )
