"""The one error path: every failure a client can see becomes `ErrorBody` JSON (an HTML page on
the dashboard's browser routes), with the status that says whose move it is.

Domain exceptions (app.core.errors) carry their own status; input the framework or the database
refuses (validation, NUL bytes, out-of-range numbers, nesting too deep) is 422; a database that
cannot be reached is 503; a full disk is 507; anything else is a logged 500 without a traceback.
"""

from __future__ import annotations

import errno
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import Conflict, DomainError, InsufficientStorage, Rejected, Unavailable

log = logging.getLogger(__name__)


class ErrorItem(BaseModel):
    """One problem with one part of the request."""

    loc: list[str | int] = Field(description='where: e.g. ["query", "limit"] or ["body", "task"]')
    msg: str = Field(description="what is wrong with it")
    type: str = Field(description="a stable code for the kind of problem")


class ErrorBody(BaseModel):
    """Every error answer of the API: what was wrong and what to do, and, for invalid input,
    each problem with where it is."""

    detail: str = Field(description="what was wrong and what to do")
    errors: list[ErrorItem] | None = Field(
        default=None, description="for invalid input (422): each problem and where it is"
    )


_DESCRIPTIONS = {
    401: "Missing, unknown or revoked API key",
    404: "Nothing by that id in this account",
    408: "The request body stalled or took too long; the connection is closed",
    409: "Not possible in the resource's current state",
    413: "The body is larger than the configured limit",
    422: "Invalid input: what was wrong and where",
    503: "The database cannot be reached; retry later",
    507: "The server's disk is full; nothing was stored",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these statuses, all with the ErrorBody schema."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


# Every authenticated /v1 route can answer these.
API_ERRORS = error_responses(401, 422, 503)

_BROWSER_PREFIX = "/dashboard"
_JSON_DASHBOARD_PATHS = ("/dashboard/progress",)


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return (path == "/" or path.startswith(_BROWSER_PREFIX)) and not path.startswith(
        _JSON_DASHBOARD_PATHS
    )


def _answer(
    request: Request,
    status_code: int,
    detail: str,
    *,
    title: str = "Error",
    errors: list[ErrorItem] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """JSON ErrorBody for the API; the dashboard's error page for browser routes."""
    if _wants_html(request):
        from app.dashboard.rendering import error_page

        return error_page(request, status_code, title, detail)
    body = ErrorBody(detail=detail, errors=errors).model_dump(mode="json")
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _domain(request: Request, exc: DomainError) -> Response:
    return _answer(request, exc.status_code, exc.message, title=exc.title, headers=exc.headers)


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    """Framework errors (unknown route, wrong method) and the dashboard's login redirect."""
    if exc.status_code < 400 or exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 400:  # FastAPI could not parse the body (bad JSON, nested too deep)
        return _answer(
            request,
            422,
            "the request body could not be read as JSON (malformed, not UTF-8, or nested too "
            "deeply); send a JSON object as the schema describes",
            title="Invalid request",
            errors=[ErrorItem(loc=["body"], msg=str(exc.detail), type="body_unreadable")],
        )
    headers = dict(exc.headers) if exc.headers else None
    return _answer(request, exc.status_code, str(exc.detail), headers=headers)


def _loc(raw: Any) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in raw]


async def _validation(request: Request, exc: RequestValidationError) -> Response:
    errors = [
        ErrorItem(loc=_loc(e.get("loc", ())), msg=str(e.get("msg", "")), type=str(e.get("type")))
        for e in exc.errors()
    ]
    shown = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return _answer(
        request, 422, f"invalid request: {shown}{more}", title="Invalid request", errors=errors
    )


async def _db_unreachable(request: Request, exc: sa_exc.DBAPIError) -> Response:
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
    return await _domain(
        request,
        Unavailable("database unavailable: the service cannot reach its database now; retry later"),
    )


async def _db_error(request: Request, exc: sa_exc.DBAPIError) -> Response:
    """DataError (a value the column cannot hold) is input; a lost connection is a 503."""
    if exc.connection_invalidated:
        return await _db_unreachable(request, exc)
    return await _domain(
        request,
        Rejected(
            "a value in the request is out of range or not storable (for example a number "
            "beyond 64 bits or a NUL character); correct it and retry"
        ),
    )


async def _dbapi(request: Request, exc: sa_exc.DBAPIError) -> Response:
    """Other driver errors: a dropped connection is a 503, the rest is ours (500)."""
    if exc.connection_invalidated:
        return await _db_unreachable(request, exc)
    return await _unexpected(request, exc)


async def _integrity(request: Request, exc: sa_exc.IntegrityError) -> Response:
    log.info("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
    return await _domain(
        request,
        Conflict("the request conflicts with a stored row (a duplicate or a dangling id); retry"),
    )


async def _statement(request: Request, exc: sa_exc.StatementError) -> Response:
    """Raised before the query reaches the server, mostly by a value the driver refuses."""
    if isinstance(exc.orig, ValueError | OverflowError):
        return await _db_error(request, sa_exc.DataError(exc.statement, exc.params, exc.orig))
    return await _unexpected(request, exc)


async def _os_error(request: Request, exc: OSError) -> Response:
    if exc.errno == errno.ENOSPC:
        log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
        return await _domain(
            request,
            InsufficientStorage(
                "the server's disk is full, so nothing was stored; retry after the operator "
                "frees space"
            ),
        )
    return await _unexpected(request, exc)


async def _recursion(request: Request, exc: RecursionError) -> Response:
    return await _domain(request, Rejected("the input is nested too deeply to read"))


async def _overflow(request: Request, exc: OverflowError) -> Response:
    return await _domain(request, Rejected(f"a number in the request is too large: {exc}"))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        ErrorBody(detail="internal server error; it was logged for the operator").model_dump(),
        status_code=500,
    )


def register(app: FastAPI) -> None:
    """Install the handlers and the NUL guard; more specific classes win over their bases."""
    app.add_middleware(NulGuard)
    app.add_exception_handler(DomainError, _domain)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(sa_exc.OperationalError, _db_unreachable)  # type: ignore[arg-type]
    app.add_exception_handler(sa_exc.InterfaceError, _db_unreachable)  # type: ignore[arg-type]
    app.add_exception_handler(sa_exc.DataError, _db_error)  # type: ignore[arg-type]
    app.add_exception_handler(sa_exc.DBAPIError, _dbapi)  # type: ignore[arg-type]
    app.add_exception_handler(sa_exc.IntegrityError, _integrity)  # type: ignore[arg-type]
    app.add_exception_handler(sa_exc.StatementError, _statement)  # type: ignore[arg-type]
    app.add_exception_handler(OSError, _os_error)  # type: ignore[arg-type]
    app.add_exception_handler(RecursionError, _recursion)  # type: ignore[arg-type]
    app.add_exception_handler(OverflowError, _overflow)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


class NulGuard:
    """Refuse a NUL character in the path, the query string or a JSON body before any route
    sees it: PostgreSQL text cannot hold one (SQLite can, so both backends answer alike), and
    no name, id or text of ours needs one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _nul_problem(scope)
        if problem is None and _is_json(scope):
            body, receive = await _buffered(receive)
            if b"\x00" in body or _JSON_NUL.search(body):
                problem = ["body"], "the JSON body"
        if problem is not None:
            loc, name = problem
            error = ErrorBody(
                detail=f"{name} contains a NUL character; remove it",
                errors=[ErrorItem(loc=loc, msg="contains a NUL character", type="nul")],
            )
            await JSONResponse(error.model_dump(mode="json"), status_code=422)(scope, receive, send)
            return
        await self.app(scope, receive, send)


# \u0000 in JSON text, unless its backslash is itself escaped (an even run of backslashes).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.split(b";")[0].strip().lower().endswith(b"json")
    return False


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read a (small, JSON) body whole and hand the route a receive that replays it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _nul_problem(scope: Scope) -> tuple[list[str | int], str] | None:
    if "\x00" in scope.get("path", "") or "%00" in scope.get("raw_path", b"").decode("latin-1"):
        return ["path"], "the path"
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" in query or "\x00" in query:
        for key, value in parse_qsl(query, keep_blank_values=True):
            if "\x00" in key or "\x00" in value:
                name = key.replace("\x00", "\\0")
                return ["query", name], f"query parameter {name!r}"
        return ["query"], "the query string"
    if "\x00" in unquote(scope.get("path", "")):
        return ["path"], "the path"
    return None
