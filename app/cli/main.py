"""The `leakgate` command: run the service (serve, api, worker, sweeper), operate it (db, keys),
audit, and gate a release (audit --gate, status, report, policy).

Exit codes: 0 consistent or no claim (with --gate: gate passed), 1 violation (with --gate: gate
failed), 2 audit failed or cancelled, or server unreachable, 3 usage error (bad arguments or
input the server refused).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.summary import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_USAGE,
    exit_code,
    print_gate,
    print_summary,
)
from app.client import ApiError, LeakgateClient

cli = typer.Typer(
    help="leakgate: audit a trained model for training-data leakage.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
keys_cli = typer.Typer(help="API keys.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(keys_cli, name="keys")
policy_cli = typer.Typer(
    help="Release-gate policies (tenant default, or per model name).", no_args_is_help=True
)
cli.add_typer(policy_cli, name="policy")
canaries_cli = typer.Typer(help="Canary sets to plant in training data.", no_args_is_help=True)
cli.add_typer(canaries_cli, name="canaries")
console = Console(stderr=True)
app = cli  # the click group is typer.main.get_command(app)

ServerOpt = Annotated[str, typer.Option(envvar="LEAKGATE_SERVER", help="API base URL.")]
KeyOpt = Annotated[str, typer.Option(envvar="LEAKGATE_API_KEY", help="API key.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"


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
    except ApiError as exc:
        console.print(f"[red]{exc.detail}[/] (HTTP {exc.status})")
        raise typer.Exit(EXIT_USAGE if 400 <= exc.status < 500 else EXIT_FAILED) from exc
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {server}: {exc}[/]")
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
    from app.core.migrate import check_schema
    from app.tenants.service import create_key

    check_schema()
    with session_scope() as db_session:
        key = create_key(db_session=db_session, tenant_name=tenant)
    print(key)


@keys_cli.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
) -> None:
    """List API keys: id, prefix, tenant, created, revoked (never the key itself)."""
    from app.core.db import session_scope
    from app.core.migrate import check_schema
    from app.tenants.service import list_keys

    check_schema()
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
    from app.core.migrate import check_schema
    from app.tenants.service import KeyNotFound, revoke_key

    check_schema()
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
    from app.core.migrate import SchemaOutOfDate, check_schema

    try:
        check_schema()
    except SchemaOutOfDate as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_FAILED) from exc
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

    from app.core.migrate import SchemaOutOfDate, check_schema

    try:
        check_schema()
    except SchemaOutOfDate as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_FAILED) from exc
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
    from app.core.migrate import SchemaOutOfDate, check_schema
    from workers.celery_app import celery_app

    try:
        check_schema()
    except SchemaOutOfDate as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_FAILED) from exc
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
def audit(
    model: Annotated[
        Path,
        typer.Option(help="save_pretrained folder (safetensors).", exists=True, file_okay=False),
    ],
    members: Annotated[
        Path, typer.Option(help="JSONL/CSV the model trained on.", exists=True, dir_okay=False)
    ],
    non_members: Annotated[
        Path, typer.Option(help="JSONL/CSV held out from training.", exists=True, dir_okay=False)
    ],
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
    name: Annotated[str | None, typer.Option(help="Model name (default: folder name).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version label.")] = None,
    epsilon: Annotated[float | None, typer.Option(help="Claimed DP epsilon.")] = None,
    delta: Annotated[float, typer.Option(help="Claimed DP delta.")] = 1e-5,
    noise_multiplier: Annotated[
        float | None, typer.Option(help="DP-SGD noise multiplier (epsilon by an accountant).")
    ] = None,
    sample_rate: Annotated[float | None, typer.Option(help="DP-SGD sampling rate.")] = None,
    dp_epochs: Annotated[float | None, typer.Option(help="DP-SGD epochs.")] = None,
    dp_steps: Annotated[int | None, typer.Option(help="DP-SGD steps.")] = None,
    attack: Annotated[list[str] | None, typer.Option(help="Attack to run (repeatable).")] = None,
    population: Annotated[
        Path | None,
        typer.Option(
            help="More records from the same distribution: enables LiRA and RMIA.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    evaluation: Annotated[
        Path | None,
        typer.Option(
            help="Labelled held-out records to measure accuracy on (default: the non-members).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    reference_models: Annotated[
        int | None, typer.Option(help="Reference models the worker trains (default 8).")
    ] = None,
    include_text: Annotated[
        bool, typer.Option(help="Put record text in the records at risk.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the verdict.")] = False,
    gate: Annotated[
        bool, typer.Option(help="With --wait: exit by the release gate of the policy.")
    ] = False,
    callback_url: Annotated[
        str | None, typer.Option(help="http(s) URL POSTed a signed summary when it ends.")
    ] = None,
    canary_set: Annotated[
        str | None, typer.Option(help="Measure this canary set (see `canaries create`).")
    ] = None,
    report_out: Annotated[Path | None, typer.Option(help="Write the report JSON here.")] = None,
) -> None:
    """Upload a model and its data, audit it, and with --wait exit by the verdict (or the gate).

    With --gate the exit code follows the release gate of the tenant's policy (see `policy`).
    """
    if gate and not wait:
        raise typer.BadParameter("--gate needs --wait", param_hint="--gate")
    spec: dict[str, Any] = {"model": {"name": name or model.resolve().name, "version": version}}
    claim: dict[str, Any] = {"delta": delta}
    if epsilon is not None:
        claim["epsilon"] = epsilon
    if noise_multiplier is not None or sample_rate is not None:
        claim["dp_sgd"] = {
            "noise_multiplier": noise_multiplier,
            "sample_rate": sample_rate,
            "epochs": dp_epochs,
            "steps": dp_steps,
        }
    if len(claim) > 1:
        spec["dp_claim"] = claim
    if attack:
        spec["attacks"] = attack
    if reference_models is not None:
        spec["references"] = {"count": reference_models}
    if include_text:
        spec["include_text"] = True
    if callback_url:
        spec["callback_url"] = callback_url
    if canary_set:
        spec["canary_set"] = canary_set
    with connected(server, api_key) as client:
        code = run_audit(
            client,
            model,
            members,
            non_members,
            spec,
            wait=wait,
            gate=gate,
            report_out=report_out,
            population=population,
            evaluation=evaluation,
        )
    raise typer.Exit(code)


def run_audit(
    client: LeakgateClient,
    model: Path,
    members: Path,
    non_members: Path,
    spec: dict[str, Any],
    *,
    wait: bool,
    gate: bool = False,
    report_out: Path | None = None,
    population: Path | None = None,
    evaluation: Path | None = None,
) -> int:
    """Upload, submit and optionally follow one audit with progress bars; return the exit code."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bars:
        ids = {}
        uploads = [
            ("target", model, "model"),
            ("members", members, "dataset"),
            ("non_members", non_members, "dataset"),
        ]
        if population is not None:
            uploads.append(("population", population, "dataset"))
        if evaluation is not None:
            uploads.append(("evaluation", evaluation, "dataset"))
        for field, path, kind in uploads:
            size = path.stat().st_size if path.is_file() else None
            bar = bars.add_task(f"uploading {path.name}", total=size)
            advance = lambda n, bar=bar: bars.advance(bar, n)  # noqa: E731
            if kind == "model":
                ids[field] = client.upload_model(path, on_bytes=advance)["id"]
            else:
                ids[field] = client.upload(path, kind, on_bytes=advance)["id"]
            bars.update(bar, completed=bars.tasks[bar].completed, total=bars.tasks[bar].completed)
    submitted = client.submit({**spec, **ids})
    console.print(f"audit {submitted['id']} queued")
    if not wait:
        print(submitted["id"])
        return 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bars:
        bar = bars.add_task("queued", total=1.0)
        final = client.wait(
            submitted["id"],
            on_update=lambda a: bars.update(
                bar, completed=a["progress"], description=a["stage"] or a["state"]
            ),
        )
    report = client.report(final["id"]) if final["state"] == "succeeded" else None
    print_summary(console, final, report)
    if report is not None and report_out is not None:
        report_out.write_text(json.dumps(report, indent=2))
    return exit_code(final, gate=gate)


@cli.command()
def status(
    audit_id: Annotated[str, typer.Argument(help="Audit id.")],
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Print the audit as JSON (state, progress, verdict, gate); a summary goes to stderr."""
    with connected(server, api_key) as client:
        audit_read = client.audit(audit_id)
    console.print(
        f"audit {audit_read['id']}: {audit_read['state']} ({audit_read['progress']:.0%}, "
        f"{audit_read['stage']}), verdict {audit_read['verdict'] or '-'}"
    )
    print_gate(console, audit_read)
    print(json.dumps(audit_read, indent=2))


class ReportFormat(StrEnum):
    json = "json"
    md = "md"
    html = "html"
    junit = "junit"


@cli.command()
def report(
    audit_id: Annotated[str, typer.Argument(help="Audit id.")],
    format: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="json: the stored report; md: for a pull-request comment; html: a standalone "
            "file with the plots; junit: XML with one test case per gate rule.",
        ),
    ] = ReportFormat.json,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Fetch a succeeded audit's report, rendered by the server (exit 3 if it has none)."""
    with connected(server, api_key) as client:
        if format is ReportFormat.json:
            text = json.dumps(client.report(audit_id), indent=2) + "\n"
        else:
            text = client.rendered_report(audit_id, format.value)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


ModelOpt = Annotated[
    str | None, typer.Option("--model", help="A model name (default: the tenant default).")
]


@policy_cli.command("set")
def policy_set(
    model_name: ModelOpt = None,
    max_auc: Annotated[float | None, typer.Option(help="Highest AUC of any attack.")] = None,
    max_tpr_at_0_1pct_fpr: Annotated[
        float | None, typer.Option(help="Highest TPR at 0.1% FPR of any attack (0..1).")
    ] = None,
    max_epsilon: Annotated[
        float | None, typer.Option(help="Highest empirical epsilon lower bound.")
    ] = None,
    verdict_not_violation: Annotated[
        bool, typer.Option(help="Fail when the verdict is violation.")
    ] = True,
    no_inserted_canary_extracted: Annotated[
        bool, typer.Option(help="Fail when an inserted canary was extracted.")
    ] = True,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Set (replace whole) the tenant's default policy, or one model name's."""
    rules = {
        "max_auc": max_auc,
        "max_tpr_at_0_1pct_fpr": max_tpr_at_0_1pct_fpr,
        "max_epsilon_lower_bound": max_epsilon,
        "verdict_not_violation": verdict_not_violation,
        "no_inserted_canary_extracted": no_inserted_canary_extracted,
    }
    with connected(server, api_key) as client:
        print(json.dumps(client.set_policy(rules, model_name=model_name), indent=2))


@policy_cli.command("list")
def policy_list(server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = "") -> None:
    """The tenant's policies as JSON (none set: audits use the built-in default)."""
    with connected(server, api_key) as client:
        print(json.dumps(client.policies(), indent=2))


@policy_cli.command("delete")
def policy_delete(
    model_name: ModelOpt = None, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = ""
) -> None:
    """Delete the tenant default or one model name's policy."""
    with connected(server, api_key) as client:
        client.delete_policy(model_name=model_name)


@canaries_cli.command("create")
def canaries_create(
    out: Annotated[Path, typer.Option(help="Write the training records (JSONL) here.")],
    template: Annotated[
        str, typer.Option(help="pin, phone, account, or text with {d} / {d*n} slots.")
    ] = "pin",
    count: Annotated[int, typer.Option(help="How many canaries.")] = 20,
    repetitions: Annotated[int, typer.Option(help="Copies of each inserted canary.")] = 20,
    label: Annotated[
        list[str] | None, typer.Option(help="A label to draw from (classifiers; repeat).")
    ] = None,
    kind: Annotated[str, typer.Option(help="secret, or audit (many, each inserted once).")] = (
        "secret"
    ),
    task: Annotated[str, typer.Option(help="text-classification or causal-lm.")] = (
        "text-classification"
    ),
    seed: Annotated[int | None, typer.Option(help="Seed (default: random).")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Generate a canary set; write the records to mix into training and print the set's id."""
    body: dict[str, Any] = {
        "task": task,
        "kind": kind,
        "template": template,
        "count": count,
        "repetitions": repetitions,
        "seed": seed,
        "labels": label or None,
    }
    with connected(server, api_key) as client:
        created = client.create_canary_set(body)
    with out.open("w") as handle:
        for record in created["records"]:
            handle.write(json.dumps(record) + "\n")
    console.print(
        f"canary set {created['id']}: {created['n_inserted']} inserted, "
        f"{created['n_held_out']} held out; {len(created['records'])} records in {out}. "
        f"Train with them, then audit with --canary-set {created['id']}."
    )
    print(created["id"])


@cli.command("webhook-secret")
def webhook_secret(server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = "") -> None:
    """Create or rotate the tenant's webhook signing secret and print it (shown once)."""
    with connected(server, api_key) as client:
        print(client.rotate_webhook_secret())


@cli.command()
def demo(
    port: int = 8000,
    keep_serving: Annotated[bool, typer.Option(help="Keep the dashboard up afterwards.")] = True,
) -> None:
    """Build the bundled example, audit it through the embedded service, show the dashboard."""
    from app.cli.demo import run_demo

    raise typer.Exit(run_demo(port=port, keep_serving=keep_serving, console=console))


def run() -> None:
    """Console-script entry: usage errors exit 3 (click's default 2 means 'audit failed' here)."""
    command = typer.main.get_command(cli)
    try:
        code = command.main(args=sys.argv[1:], prog_name="leakgate", standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except typer.exceptions.TyperException as exc:  # typer's click: usage and parameter errors
        exc.show()
        sys.exit(EXIT_USAGE)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
