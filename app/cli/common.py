"""What every `leakgate` command shares: the console, the server options, the error mapping.

Client commands import only this, `app.client` and `app.cli.summary` (httpx, typer, rich), so
`pip install leakgate` without the server extra runs them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from app.cli.summary import EXIT_FAILED, EXIT_USAGE
from app.client import ApiError, LeakgateClient, UsageError

console = Console(stderr=True)

ServerOpt = Annotated[str, typer.Option(envvar="LEAKGATE_SERVER", help="API base URL.")]
KeyOpt = Annotated[str, typer.Option(envvar="LEAKGATE_API_KEY", help="API key.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"
# Outside a terminal, progress is one line per stage, and at least one per this many seconds.
QUIET_PROGRESS_S = 30.0


@contextmanager
def connected(server: str, api_key: str) -> Iterator[LeakgateClient]:
    """A client; server errors become exit codes (4xx: usage, else and unreachable: failed)."""
    if not api_key:
        raise typer.BadParameter(
            "no API key: pass --api-key or set LEAKGATE_API_KEY", param_hint="--api-key"
        )
    try:
        with LeakgateClient(server, api_key) as client:
            yield client
    except UsageError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_USAGE) from exc
    except ApiError as exc:
        console.print(f"[red]{exc.detail}[/] (HTTP {exc.status})")
        raise typer.Exit(EXIT_USAGE if 400 <= exc.status < 500 else EXIT_FAILED) from exc
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {server}: {exc}[/]")
        raise typer.Exit(EXIT_FAILED) from exc
    except TimeoutError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_FAILED) from exc


def audit_url(server: str, audit_id: str) -> str:
    """Where a person looks at the audit: its dashboard page."""
    return f"{server.rstrip('/')}/dashboard/audits/{audit_id}"


class PlainProgress:
    """Progress for logs (CI): a line when the stage changes, else one per QUIET_PROGRESS_S."""

    def __init__(self) -> None:
        self._stage: str | None = None
        self._last = 0.0

    def __call__(self, audit: dict[str, Any]) -> None:
        stage = audit.get("stage") or audit["state"]
        now = time.monotonic()
        if stage != self._stage or now - self._last >= QUIET_PROGRESS_S:
            console.print(f"{audit['progress']:>4.0%} {stage}", highlight=False)
            self._stage, self._last = stage, now


def is_terminal() -> bool:
    return sys.stderr.isatty()
