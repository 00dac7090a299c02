"""Server-rendered dashboard of a tenant's audits: login, the audit list, one audit's report and
one model's audits over time.

The API key travels in an HttpOnly, SameSite=Strict cookie, so pages work in a plain browser
without JavaScript while other sites can neither read the key nor post forms with it. Forms
also carry a per-browser token (double-submit: a cookie and a hidden field that must match),
and a POST whose Origin or Referer names another site is refused, so a forged form fails even
where SameSite is not honoured. Pages are HTML built from templates in `templates/`; the
stylesheet and one small script (live progress, polling `/dashboard/progress`) are served from
`static/`. Without the script, pages in flight reload themselves.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.deps import Offset, SessionDep
from app.audits import service
from app.audits.compare import compare
from app.audits.models import FINAL_STATES, STATES, Audit, Report
from app.audits.schemas import AuditRead, GateResult
from app.core.errors import Forbidden, NotFound, Unauthorized
from app.dashboard.formatting import FILTERS, as_utc
from app.dashboard.report_view import ReportView, build_report_view
from app.dashboard.summary import KeyNumbers, key_numbers
from app.dashboard.trends import model_trends
from app.reporting.html import render_html
from app.tenants.models import Tenant
from app.tenants.service import tenant_for_key
from attacks.report import REPORT_SCHEMA_VERSION, LeakageReport

COOKIE = "leakgate_key"
COOKIE_PATH = "/dashboard"
CSRF_COOKIE = "leakgate_csrf"
CSRF_FIELD = "csrf_token"
HOME = "/dashboard"
LOGIN = "/dashboard/login"
VERDICTS = ("violation", "inconclusive", "consistent", "no-claim")
GATES = tuple(GateResult)
ACTIVE_STATES = tuple(s for s in STATES if s not in FINAL_STATES)
REFRESH_S = 2
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

_HERE = Path(__file__).resolve().parent
_STATIC = {p.name: p for p in (_HERE / "static").iterdir() if p.is_file()}
# Pages hold one tenant's results: never cached, never framed (the Cancel button), and only
# our own script, which may only call back to this origin.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
_NOTICES = {
    "cancelled": "Audit cancelled.",
    "cancel-requested": "Cancellation requested: the worker stops at its next step.",
    "already-ended": "The audit had already ended, so there was nothing to cancel.",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(FILTERS)
templates = Jinja2Templates(env=_env)

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    tenant: Tenant | None,
    status_code: int = status.HTTP_200_OK,
    refresh: bool = False,
) -> HTMLResponse:
    """Render a page with the values every page's frame needs and the safety headers."""
    token = _csrf_token(request)
    full = {
        "tenant": tenant,
        "refresh_s": REFRESH_S if refresh else None,
        "csrf_token": token,
        **context,
    }
    response = templates.TemplateResponse(
        request, name, full, status_code=status_code, headers=_PAGE_HEADERS
    )
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    """The page every dashboard error gets (the handlers in app.api.errors call it)."""
    return _page(
        request,
        "error.html",
        {"title": title, "message": message},
        tenant=None,
        status_code=status_code,
    )


def _csrf_token(request: Request) -> str:
    """This browser's form token: the one in its cookie, else a new one for this page."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token
    if not hasattr(request.state, "new_csrf_token"):
        request.state.new_csrf_token = secrets.token_urlsafe(32)
    return request.state.new_csrf_token


def _same_origin(request: Request) -> bool:
    """A browser names the page a form was posted from; it must be this site."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:  # non-browser clients; the token below still has to match
        return True
    if source == "null":
        return False
    return urlsplit(source).netloc == request.headers.get("host", request.url.netloc)


def check_csrf(request: Request, csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "") -> None:
    """Every dashboard POST: same origin, and the form's token matches the browser's cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not _same_origin(request):
        raise Forbidden("this form was posted from another site; open the dashboard and retry")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        raise Forbidden(
            "the form's security token is missing or stale; reload the page and submit again"
        )


CsrfChecked = Depends(check_csrf)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _cookie_tenant(request: Request, db_session: SessionDep) -> Tenant | None:
    key = request.cookies.get(COOKIE)
    return tenant_for_key(db_session=db_session, key=key) if key else None


def dashboard_tenant(request: Request, db_session: SessionDep) -> Tenant:
    """The tenant whose key is in the cookie; otherwise off to the login page (303)."""
    tenant = _cookie_tenant(request, db_session)
    if tenant is None:
        raise HTTPException(status.HTTP_303_SEE_OTHER, "log in first", headers={"Location": LOGIN})
    return tenant


DashboardTenant = Annotated[Tenant, Depends(dashboard_tenant)]


@router.get("/")
def root() -> RedirectResponse:
    """The service's front door is the dashboard."""
    return _redirect(HOME)


@router.get("/dashboard/static/{name}")
def static_file(name: str) -> FileResponse:
    """Only the files shipped in `static/` are served (no paths, so no traversal)."""
    path = _STATIC.get(name)
    if path is None:
        raise NotFound(f"no static file {name}")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=300"})


@router.get("/dashboard/login")
def login_form(request: Request, db_session: SessionDep) -> Response:
    """The key form; someone already logged in goes straight to the list."""
    if _cookie_tenant(request, db_session) is not None:
        return _redirect(HOME)
    return _page(request, "login.html", {"error": None}, tenant=None)


@router.post("/dashboard/login", dependencies=[CsrfChecked])
def login(
    request: Request, db_session: SessionDep, api_key: Annotated[str, Form()] = ""
) -> Response:
    """Check the key and keep it in the cookie; a wrong key gets the form back with 401."""
    key = api_key.strip()
    tenant = tenant_for_key(db_session=db_session, key=key) if key else None
    if tenant is None:
        error = "Unknown or revoked API key." if key else "Enter an API key."
        return _page(
            request,
            "login.html",
            {"error": error},
            tenant=None,
            status_code=status.HTTP_401_UNAUTHORIZED,
        )
    response = _redirect(HOME)
    response.set_cookie(
        COOKIE,
        key,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/dashboard/logout", dependencies=[CsrfChecked])
def logout() -> RedirectResponse:
    """Forget the key in this browser (the key itself stays valid for the CLI)."""
    response = _redirect(LOGIN)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


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


def _model_names(db_session: Session, tenant: Tenant) -> list[str]:
    """The tenant's model names, offered as suggestions since the filter matches exactly."""
    names = db_session.scalars(
        select(Audit.model_name)
        .where(Audit.tenant_id == tenant.id)
        .distinct()
        .order_by(Audit.model_name)
        .limit(MODEL_NAMES_SHOWN)
    )
    return list(names)


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
        "model_names": _model_names(db_session, tenant),
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
