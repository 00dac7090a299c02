"""The embedded service: migrations, one worker process and the API, on one machine.

SQLite holds the data and (through Kombu's SQLAlchemy transport) the queue, so no server is
needed; the worker runs the same Celery task code as production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import uvicorn

from app.core.config import get_settings
from app.core.migrate import upgrade


def start_worker_process(*, concurrency: int = 1) -> subprocess.Popen:
    """A real Celery worker in a child process (its own interpreter, fork-safe for CUDA)."""
    cmd = [sys.executable, "-m", "app.cli", "worker", "--concurrency", str(concurrency)]
    return subprocess.Popen(cmd, env=os.environ.copy())


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve(*, host: str, port: int, workers: int = 1) -> None:
    settings = get_settings()
    settings.ensure_dirs()
    upgrade()
    procs = [start_worker_process() for _ in range(workers)]
    try:
        uvicorn.run("app.main:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        for proc in procs:
            stop_process(proc)
