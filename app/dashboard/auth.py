"""Dashboard login and logout, the static files and the front door."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response

from app.api.deps import SessionDep
from app.core.errors import NotFound
from app.dashboard.rendering import (
    _STATIC,
    COOKIE,
    COOKIE_PATH,
    HOME,
    LOGIN,
    CsrfChecked,
    _cookie_tenant,
    _page,
    _redirect,
)
from app.tenants.service import tenant_for_key

router = APIRouter(tags=["dashboard"], include_in_schema=False)


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
