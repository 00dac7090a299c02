"""A migrated PostgreSQL + Redis environment with one real worker process, for the tests that
need the whole path (API → broker → worker → database)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from tests.utils.env import backend_env, environ, reset_caches


@contextmanager
def worker_service(
    pg_schema: str, home: Path, extra_env: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """Point the settings at the schema, migrate it, run a worker; restore everything after."""
    env = {**backend_env("postgres", home, pg_schema), **(extra_env or {})}
    with environ(env):
        from app.core.migrate import upgrade

        upgrade()
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--loglevel", "WARNING"],
            env=os.environ.copy(),
        )
        try:
            yield env
        finally:
            worker.terminate()
            worker.wait(timeout=30)


@contextmanager
def api_client(env: dict[str, str]) -> Iterator[TestClient]:
    """An in-process API on the worker's environment (no sweeper: tests drive time)."""
    os.environ.update(env)
    reset_caches()
    from app.main import create_app

    with TestClient(create_app(run_sweeper=False)) as test_client:
        yield test_client
