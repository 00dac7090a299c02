"""The dashboard's pages: the audit list, live progress, one model's audits over time, one
audit, the comparison of two, and cancelling. Queries live in the audits service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.api.deps import Offset, SessionDep
from app.audits import service
from app.audits.compare import compare
from app.audits.models import FINAL_STATES, STATES, Audit
from app.audits.schemas import AuditRead, GateResult
from app.core.errors import NotFound, Unauthorized
from app.dashboard.rendering import (
    HOME,
    CsrfChecked,
    DashboardTenant,
    _cookie_tenant,
    _env,
    _page,
    _redirect,
)
from app.dashboard.summary import KeyNumbers, key_numbers
from app.dashboard.trends import model_trends
from app.presentation.formatting import as_utc
from app.presentation.report_view import ReportView, build_report_view
from attacks.report import REPORT_SCHEMA_VERSION, LeakageReport

router = APIRouter(tags=["dashboard"], include_in_schema=False)


VERDICTS = ("violation", "inconclusive", "consistent", "no-claim")


GATES = tuple(GateResult)


ACTIVE_STATES = tuple(s for s in STATES if s not in FINAL_STATES)


PAGE_SIZE = 25


MODEL_NAMES_SHOWN = 200


MODEL_AUDITS_SHOWN = 200


PROGRESS_IDS_MAX = 200


SORT_LABELS = {
    "newest": "newest first",
    "oldest": "oldest first",
    "auc": "highest AUC",
    "epsilon": "highest ε bound",
    "model": "model name",
}


_NOTICES = {
    "cancelled": "Audit cancelled.",
    "cancel-requested": "Cancellation requested: the worker stops at its next step.",
    "already-ended": "The audit had already ended, so there was nothing to cancel.",
}


@dataclass(frozen=True)
class ListRow:
    """One audit in the list: its read model and the numbers read from its report."""

    audit: AuditRead
    numbers: KeyNumbers

    @property
    def gate(self) -> str | None:
        """`pass`/`fail` once the release gate has judged the audit (when the server has one)."""
        return self.audit.gate


def _list_rows(db_session: Session, audits: list[Audit]) -> list[ListRow]:
    bodies = service.report_bodies(
        db_session=db_session, audit_ids=[a.id for a in audits if a.state == "succeeded"]
    )
    return [ListRow(service.to_read(a), key_numbers(bodies.get(a.id))) for a in audits]


def _list_url(filters: dict[str, str], *, limit: int, offset: int) -> str:
    """A list URL keeping the filters and sort in use (empty and default ones left out)."""
    query = {k: v for k, v in filters.items() if v and not (k == "sort" and v == "newest")}
    if limit != PAGE_SIZE:
        query["limit"] = str(limit)
    if offset:
        query["offset"] = str(offset)
    return f"{HOME}?{urlencode(query)}" if query else HOME


@router.get("/dashboard")
def audit_list(
    request: Request,
    tenant: DashboardTenant,
    db_session: SessionDep,
    model_name: str = "",
    state: str = "",
    verdict: str = "",
    gate: str = "",
    sort: str = "newest",
    limit: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
    offset: Offset = 0,
) -> HTMLResponse:
    """The tenant's audits, newest first unless sorted otherwise; audits in flight update live
    (the script) or by reloading the page (without it)."""
    filters = {
        "model_name": model_name.strip(),
        "state": state if state in STATES else "",
        "verdict": verdict if verdict in VERDICTS else "",
        "gate": gate if gate in GATES else "",
        "sort": sort if sort in service.SORTS else "newest",
    }
    audits, total = service.get_all(
        db_session=db_session,
        tenant=tenant,
        model_name=filters["model_name"] or None,
        state=filters["state"] or None,
        verdict=filters["verdict"] or None,
        gate=filters["gate"] or None,
        sort=filters["sort"],
        limit=limit,
        offset=offset,
    )
    rows = _list_rows(db_session, audits)
    context = {
        "rows": rows,
        "total": total,
        "filters": filters,
        "filtered": any(v for k, v in filters.items() if k != "sort"),
        "states": STATES,
        "verdicts": VERDICTS,
        "gates": GATES,
        "sorts": SORT_LABELS,
        "model_names": service.model_names(
            db_session=db_session, tenant=tenant, limit=MODEL_NAMES_SHOWN
        ),
        "first": offset + 1 if rows else 0,
        "last": offset + len(rows),
        "prev_url": _list_url(filters, limit=limit, offset=max(0, offset - limit))
        if offset > 0
        else None,
        "next_url": _list_url(filters, limit=limit, offset=offset + limit)
        if offset + limit < total
        else None,
        "clear_url": _list_url({}, limit=limit, offset=0),
    }
    active = any(row.audit.state in ACTIVE_STATES for row in rows)
    return _page(request, "list.html", context, tenant=tenant, refresh=active)


@router.get("/dashboard/progress")
def progress(
    request: Request,
    db_session: SessionDep,
    audit_id: Annotated[list[str], Query(alias="id", max_length=PROGRESS_IDS_MAX)],
) -> JSONResponse:
    """State and progress of the named audits, for the page script; ids of other tenants are
    left out as if they did not exist. Each item carries its list row, rendered as on the page.
    """
    tenant = _cookie_tenant(request, db_session)
    if tenant is None:
        raise Unauthorized("log in first: the dashboard cookie is missing or its key revoked")
    audits = service.get_many(db_session=db_session, tenant=tenant, audit_ids=audit_id)
    row_template = _env.get_template("_audit_row.html")
    items = [
        {
            "id": row.audit.id,
            "state": row.audit.state,
            "final": row.audit.state in FINAL_STATES,
            "progress": row.audit.progress,
            "stage": row.audit.stage,
            "verdict": row.audit.verdict,
            "row_html": row_template.render(row=row),
        }
        for row in _list_rows(db_session, audits)
    ]
    return JSONResponse({"audits": items}, headers={"Cache-Control": "no-store"})


@router.get("/dashboard/models/{model_name:path}")
def model_page(
    request: Request, model_name: str, tenant: DashboardTenant, db_session: SessionDep
) -> HTMLResponse:
    """The latest audits of one model name, oldest first, with their leakage, epsilon and
    utility drawn over time so that a regression between versions shows at a glance."""
    newest, total = service.get_all(
        db_session=db_session,
        tenant=tenant,
        model_name=model_name,
        sort="newest",
        limit=MODEL_AUDITS_SHOWN,
    )
    audits = newest[::-1]
    if not audits:
        raise NotFound(f"No audits of {model_name} in this account.", title="Model not found")
    rows = _list_rows(db_session, audits)
    context = {
        "model_name": model_name,
        "rows": rows,
        "total": total,
        "shown": len(rows),
        "trends": model_trends(rows),
    }
    return _page(request, "model.html", context, tenant=tenant)


@router.get("/dashboard/compare")
def compare_page(
    request: Request,
    tenant: DashboardTenant,
    db_session: SessionDep,
    a: Annotated[str, Query(min_length=1, max_length=64)],
    b: Annotated[str, Query(min_length=1, max_length=64)],
) -> HTMLResponse:
    """Two succeeded audits side by side (usually two versions of one model): what changed,
    attack by attack, with the verdict, the gate, epsilon and utility."""
    comparison = compare(db_session=db_session, tenant=tenant, audit_id=a, other_id=b)
    return _page(request, "compare.html", {"c": comparison}, tenant=tenant)


def _load_report(db_session: Session, audit: Audit) -> tuple[ReportView | None, str | None]:
    """The report ready to show, or why it cannot be shown (never a 500 for a bad body)."""
    stored = service.get_report(db_session=db_session, audit=audit)
    if stored is None:
        return None, "This audit succeeded but its report is missing."
    try:
        report = LeakageReport.model_validate(stored.body)
    except ValidationError as exc:
        return None, (
            f"The stored report (schema version {stored.schema_version}) does not match the "
            f"schema this server reads (version {REPORT_SCHEMA_VERSION}): "
            f"{exc.error_count()} problem(s). Download the JSON to inspect it."
        )
    return build_report_view(report), None


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (as_utc(end) - as_utc(start)).total_seconds()


@router.get("/dashboard/audits/{audit_id}")
def audit_detail(
    request: Request,
    audit_id: str,
    tenant: DashboardTenant,
    db_session: SessionDep,
    notice: str = "",
) -> HTMLResponse:
    """One audit: its state while in flight, its full report once it has succeeded."""
    audit = service.get_or_404(db_session=db_session, tenant=tenant, audit_id=audit_id)
    view, report_error = (None, None)
    if audit.state == "succeeded":
        view, report_error = _load_report(db_session, audit)
    spec = audit.spec or {}
    read = service.to_read(audit)
    context = {
        "audit": read,
        "gate": read.gate,
        "gate_reasons": read.gate_reasons,
        "active": audit.state in ACTIVE_STATES,
        "attempts": audit.attempts,
        "requested_attacks": spec.get("attacks") or [],
        "dp_claim": spec.get("dp_claim"),
        "queued_for": _seconds_between(audit.created_at, audit.started_at),
        "duration": _seconds_between(audit.started_at, audit.finished_at),
        "notice": _NOTICES.get(notice),
        "view": view,
        "report_error": report_error,
    }
    return _page(
        request,
        "detail.html",
        context,
        tenant=tenant,
        refresh=audit.state not in FINAL_STATES,
    )


@router.post("/dashboard/audits/{audit_id}/cancel")
def cancel_audit(
    audit_id: str, tenant: DashboardTenant, db_session: SessionDep, _csrf: None = CsrfChecked
) -> Response:
    """Cancel (queued) or flag for cancellation (running), then show the audit again."""
    audit = service.get_or_404(db_session=db_session, tenant=tenant, audit_id=audit_id)
    try:
        audit = service.cancel(db_session=db_session, audit=audit)
    except service.AlreadyEnded:  # not an error here: the page says so
        notice = "already-ended"
    else:
        notice = "cancelled" if audit.state == "cancelled" else "cancel-requested"
    return _redirect(f"{HOME}/audits/{audit_id}?notice={notice}")
