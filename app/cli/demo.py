"""`leakgate demo`: the bundled example audited end to end through the embedded service."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

import httpx
from rich.console import Console

from app.cli.embedded import exit_on_signal, popen_dying_with_parent, stop_process
from app.cli.summary import EXIT_FAILED
from app.client import ApiError, LeakgateClient
from app.core.config import get_settings
from app.core.db import session_scope
from app.core.migrate import upgrade
from app.tenants.service import create_key

DEMO_TENANT = "demo"


def wait_until_ready(server: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode}")
        try:
            if httpx.get(f"{server}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the service at {server} was not ready after {timeout_s} s")


def demo_key() -> str:
    """The demo tenant's key, kept in the data folder so reruns reuse it."""
    settings = get_settings()
    path = settings.home / "demo-api-key"
    if path.exists():
        return path.read_text().strip()
    with session_scope() as db_session:
        key = create_key(db_session=db_session, tenant_name=DEMO_TENANT)
    path.write_text(key)
    path.chmod(0o600)
    return key


def run_demo(*, port: int, keep_serving: bool, console: Console) -> int:
    from transformers.utils import logging as hf_logging

    from app.cli.client_commands import run_audit
    from demo.intent import ExampleFiles, build_example, make_intent_records, write_jsonl

    hf_logging.disable_progress_bar()

    settings = get_settings()
    settings.ensure_dirs()
    example_dir = settings.home / "example"
    population = example_dir / "population.jsonl"
    files = ExampleFiles(
        model_dir=example_dir / "model",
        members=example_dir / "members.jsonl",
        non_members=example_dir / "non_members.jsonl",
    )
    if not (files.model_dir / "config.json").exists():
        with console.status("training the example intent classifier (it memorises its data)"):
            started = time.perf_counter()
            files = build_example(example_dir)
        # More records from the same distribution, for the reference models of LiRA and RMIA.
        write_jsonl(population, make_intent_records(600, seed=1, label_noise=0.2, id_prefix="p"))
        console.print(f"example built in {time.perf_counter() - started:.0f} s: {files.model_dir}")
    upgrade()
    key = demo_key()
    server = f"http://127.0.0.1:{port}"
    log_path = settings.home / "serve.log"
    log = log_path.open("a")
    # SIGTERM ends the demo through the `finally` below, which stops `serve` and its worker.
    signal.signal(signal.SIGTERM, exit_on_signal)
    proc = popen_dying_with_parent(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    console.print(f"service log: {log_path}")
    try:
        with console.status(f"starting the embedded service at {server}"):
            wait_until_ready(server, proc)
        # The example was trained without DP; a claim of epsilon 1 shows the gate catching it.
        spec = {
            "model": {"name": "example-intent-classifier", "version": "demo"},
            "dp_claim": {"epsilon": 1.0, "delta": 1e-5},
            "references": {"count": 4, "train": {"epochs": 15}},
            "records_at_risk": 10,
        }
        try:
            with LeakgateClient(server, key) as client:
                code = run_audit(
                    client,
                    files.model_dir,
                    files.members,
                    files.non_members,
                    spec,
                    wait=True,
                    population=population,
                    server=server,
                )
        except (httpx.HTTPError, ApiError, TimeoutError) as exc:
            console.print(f"[red]the demo audit did not finish: {exc}[/] (log: {log_path})")
            return EXIT_FAILED
        # The demo is not a release gate: a finished audit is a success whatever its verdict.
        code = 0 if code in (0, 1) else code
        console.print(f"\ndashboard: {server}/dashboard  (API key: {key})")
        console.print(f"API docs:  {server}/docs")
        if keep_serving:
            console.print("serving; press Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                proc.wait()
        return code
    finally:
        stop_process(proc)
        log.close()
