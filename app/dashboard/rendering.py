"""The dashboard's page frame and its guards: rendering with the safety headers, the API key
in an HttpOnly SameSite=Strict cookie, and the double-submit CSRF token with an Origin check.

The API key travels in the cookie, so pages work in a plain browser without JavaScript while
other sites can neither read the key nor post forms with it; a POST whose Origin or Referer
names another site is refused, so a forged form fails even where SameSite is not honoured.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from app.api.deps import SessionDep
from app.core.errors import Forbidden
from app.presentation.templating import environment
from app.tenants.models import Tenant
from app.tenants.service import tenant_for_key

COOKIE = "leakgate_key"


COOKIE_PATH = "/dashboard"


CSRF_COOKIE = "leakgate_csrf"


CSRF_FIELD = "csrf_token"


HOME = "/dashboard"


LOGIN = "/dashboard/login"


REFRESH_S = 2


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


_env = environment()


templates = Jinja2Templates(env=_env)


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
