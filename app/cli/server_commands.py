"""Server commands: run the service (serve, api, worker, sweeper), operate it (db, keys, gc)
and the demo.

Everything server-side is imported inside the command that needs it, so the client commands
work with `pip install leakgate` alone; these need `leakgate[server]`.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.cli.common import console
from app.cli.summary import EXIT_FAILED, EXIT_USAGE

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


@keys_cli.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
) -> None:
    """List API keys: id, prefix, tenant, created, revoked (never the key itself)."""
    from app.core.db import session_scope
    from app.tenants.service import list_keys

    _check_schema()
    with session_scope() as db_session:
        rows = [
            (
                key.id,
                key.prefix,
                key.tenant.name,
                key.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                key.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if key.revoked_at else "-",
            )
            for key in list_keys(db_session=db_session, tenant_name=tenant)
        ]
    print("\t".join(("id", "prefix", "tenant", "created", "revoked")))
    for row in rows:
        print("\t".join(row))


@keys_cli.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's prefix (as `keys list` shows) or id.")],
) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    from app.core.db import session_scope
    from app.tenants.service import KeyNotFound, revoke_key

    _check_schema()
    try:
        with session_scope() as db_session:
            revoked, changed = revoke_key(db_session=db_session, prefix_or_id=key)
            summary = f"key {revoked.prefix} ({revoked.id}) of tenant {revoked.tenant.name}"
    except KeyNotFound as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_USAGE) from exc
    console.print(f"{'revoked' if changed else 'already revoked:'} {summary}")


@cli.command()
def sweeper() -> None:
    """Run the sweeper: re-send audits the broker lost and hand a dead worker's audits to a
    new delivery (a process of its own, so recovery does not depend on an API process)."""
    import logging
    import signal
    import threading

    from app.audits.sweeper import sweep_forever
    from app.core.config import get_settings

    _check_schema()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    console.print(
        f"sweeping every {settings.sweep_interval_s:g} s (stale after "
        f"{settings.stale_after_s:g} s, unsent after {settings.sweep_after_s:g} s)"
    )
    sweep_forever(settings, stop)


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
