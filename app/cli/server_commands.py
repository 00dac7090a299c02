"""Server commands: run the service (serve, api, worker), operate it (db, keys) and the demo.

Everything server-side is imported inside the command that needs it, so the client commands
work with `pip install leakgate` alone; these need `leakgate[server]`.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.cli.common import console
from app.cli.summary import EXIT_FAILED

cli = typer.Typer()
db_cli = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
keys_cli = typer.Typer(help="API keys.", no_args_is_help=True)


def _check_schema() -> None:
    """Refuse to start on an out-of-date schema, saying what to run."""
    from app.core.migrate import SchemaOutOfDate, check_schema

    try:
        check_schema()
    except SchemaOutOfDate as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_FAILED) from exc


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the code's version."""
    from app.core.migrate import current_revision, upgrade

    upgrade()
    console.print(f"database at revision {current_revision()}")


@db_cli.command("current")
def db_current() -> None:
    """Show the database's schema revision and the code's."""
    from app.core.migrate import current_revision, head_revision

    console.print(f"database: {current_revision()}  code: {head_revision()}")


@keys_cli.command("create")
def keys_create(tenant: Annotated[str, typer.Option(help="Tenant name (created if new).")]) -> None:
    """Print a new API key for the tenant (stored hashed; shown once)."""
    from app.core.db import session_scope
    from app.tenants.service import create_key

    _check_schema()
    with session_scope() as db_session:
        key = create_key(db_session=db_session, tenant_name=tenant)
    print(key)


@cli.command()
def gc(
    dry_run: Annotated[bool, typer.Option(help="Only list what would be removed.")] = False,
) -> None:
    """Remove stale temporary files, unreferenced blobs and model caches, and (when
    LEAKGATE_GC_ARTIFACT_MAX_AGE_DAYS is set) old artifacts no audit refers to."""
    from app.artifacts.gc import collect
    from app.artifacts.storage import Storage
    from app.core.config import get_settings
    from app.core.db import session_scope

    _check_schema()
    settings = get_settings()
    settings.ensure_dirs()
    assert settings.storage_dir is not None
    with session_scope() as db_session:
        report = collect(
            db_session=db_session,
            storage=Storage(settings.storage_dir),
            settings=settings,
            dry_run=dry_run,
        )
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb}: {len(report.tmp_entries)} temporary file(s), {len(report.model_caches)} "
        f"model cache(s), {len(report.blobs)} blob(s), {len(report.artifacts)} artifact(s); "
        f"{report.freed_bytes} bytes"
    )


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes to start.")] = 1,
) -> None:
    """Run everything on this machine: migrations, API, dashboard and a worker."""
    from app.cli.embedded import serve as run_embedded

    run_embedded(host=host, port=port, workers=workers)


@cli.command()
def api(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API server only (production; workers run separately)."""
    import uvicorn

    _check_schema()
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, proxy_headers=True)


@cli.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Audits run at once by this process.")] = 1,
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker that executes audits (uses a GPU when one is present)."""
    # Before the imports below: they read (and cache) the settings, which forked children share.
    os.environ.setdefault(
        "LEAKGATE_TORCH_THREADS", str(max(1, (os.cpu_count() or 1) // concurrency))
    )
    from app.core.queue import get_celery

    _check_schema()
    # The worker imports the task modules (`TASK_MODULES`) as it starts.
    celery_app = get_celery()
    celery_app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            "-Q",
            celery_app.conf.task_default_queue,
            "--without-gossip",
            "--without-mingle",
        ]
    )


@cli.command()
def demo(
    port: int = 8000,
    keep_serving: Annotated[bool, typer.Option(help="Keep the dashboard up afterwards.")] = True,
) -> None:
    """Build the bundled example, audit it through the embedded service, show the dashboard."""
    from app.cli.demo import run_demo

    raise typer.Exit(run_demo(port=port, keep_serving=keep_serving, console=console))
