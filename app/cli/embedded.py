"""The embedded service: migrations, one worker process and the API, on one machine.

SQLite holds the data and (through Kombu's SQLAlchemy transport) the queue, so no server is
needed; the worker runs the same Celery task code as production.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import uvicorn

from app.core.config import get_settings
from app.core.migrate import upgrade

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the worker gets SIGTERM if `serve` dies, even by SIGKILL, so none is orphaned."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def popen_dying_with_parent(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    """A child process that gets SIGTERM when this one dies, however it dies (Linux)."""
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    return subprocess.Popen(cmd, env=os.environ.copy(), preexec_fn=preexec, **kwargs)


def start_worker_process(*, concurrency: int = 1) -> subprocess.Popen:
    """A real Celery worker in a child process (its own interpreter, fork-safe for CUDA)."""
    cmd = [sys.executable, "-m", "app.cli", "worker", "--concurrency", str(concurrency)]
    return popen_dying_with_parent(cmd)


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def watch_workers(procs: list[subprocess.Popen]) -> None:
    """Stop the whole service if a worker dies: an API without workers would queue for ever."""

    def watch() -> None:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        dead = next(p for p in procs if p.poll() is not None)
        if dead.returncode not in (0, -signal.SIGTERM):
            print(f"leakgate: worker exited with code {dead.returncode}; stopping", file=sys.stderr)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="leakgate-worker-watch", daemon=True).start()


def exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(*, host: str, port: int, workers: int = 1) -> None:
    settings = get_settings()
    settings.ensure_dirs()
    upgrade()
    procs = [start_worker_process() for _ in range(workers)]
    watch_workers(procs)
    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so that
    # the `finally` below stops the workers instead of the process dying on the spot.
    signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        uvicorn.run("app.main:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        for proc in procs:
            stop_process(proc)
