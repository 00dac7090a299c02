"""Domain exceptions: services raise them, one set of handlers (app.api.errors) answers HTTP.

Each carries a message that says what was wrong and what to do; its class says the status.
Views never build error responses by hand: they let these propagate.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class DomainError(Exception):
    """Base of every error a client can cause or be told about; `status_code` is its answer."""

    status_code = 500
    title = "Error"

    def __init__(
        self, message: str, *, title: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title
        self.headers = headers


class NotFound(DomainError):
    """Nothing by that id in the caller's account (another tenant's rows look the same)."""

    status_code = 404
    title = "Not found"


class Rejected(DomainError, ValueError):
    """Well-formed input that refers to something unusable or breaks a rule (422)."""

    status_code = 422
    title = "Not accepted"


class Forbidden(DomainError):
    """Authenticated, but this request may not be honoured (a forged dashboard form) (403)."""

    status_code = 403
    title = "Not allowed"


class Conflict(DomainError):
    """The request is fine but the resource is in the wrong state for it (409)."""

    status_code = 409
    title = "Not possible now"


class TimedOut(DomainError):
    """The request body stalled or took too long to arrive (408); the connection is closed."""

    status_code = 408
    title = "Too slow"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Connection": "close"})


class TooLarge(DomainError, ValueError):
    """The request body passed a configured size limit (413)."""

    status_code = 413
    title = "Too large"


class Unauthorized(DomainError):
    """No API key, or one that is unknown or revoked (401)."""

    status_code = 401
    title = "Not logged in"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Unavailable(DomainError):
    """A service the request needs (the database) cannot be reached now; retry later (503)."""

    status_code = 503
    title = "Service unavailable"


class InsufficientStorage(DomainError):
    """The server's disk is full; nothing was stored (507)."""

    status_code = 507
    title = "Storage full"


def found(row: T | None, what: str, ident: str) -> T:
    """The one not-found rule: `row`, or NotFound naming what was looked for.

    Services wrap their `get` with it (`get_or_404`), so every route says "no audit X" alike.
    """
    if row is None:
        raise NotFound(f"no {what} {ident}", title=f"{what.capitalize()} not found")
    return row
