"""Shared fixtures: a configured service per backend (SQLite + embedded broker, PostgreSQL + Redis).

PostgreSQL tests use the `test` database with a schema of their own per test run (dropped at
the end); Redis tests use a queue name of their own per run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get(
    "LEAKGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LEAKGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


def reset_caches() -> None:
    """Settings, engines and the Celery app are cached per process; tests switch between them."""
    from app.core.config import get_settings
    from app.core.db import engine_for
    from app.core.queue import get_celery

    get_settings.cache_clear()
    engine_for.cache_clear()
    get_celery.cache_clear()


@dataclass
class Backend:
    name: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A fresh schema in the `test` database for this run; its URL puts it first on the path."""
    from sqlalchemy import create_engine, text

    schema = f"run_{RUN_ID}"
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def backend_env(name: str, home: Path, pg_url: str | None) -> dict[str, str]:
    env = {
        "LEAKGATE_ENV": "test",
        "LEAKGATE_HOME": str(home),
        "LEAKGATE_SWEEP_AFTER_S": "2",
        "LEAKGATE_SWEEP_INTERVAL_S": "1",
        "LEAKGATE_BOOTSTRAP_SAMPLES": "200",
    }
    if name == "postgres":
        assert pg_url is not None
        env["LEAKGATE_DATABASE_URL"] = pg_url
        env["LEAKGATE_BROKER_URL"] = REDIS_URL
        env["LEAKGATE_QUEUE_NAME"] = f"leakgate-test-{RUN_ID}"
    return env


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request, tmp_path_factory) -> Iterator[Backend]:
    """One configured, migrated service per backend, shared by the tests of a run."""
    pg_url = request.getfixturevalue("pg_schema") if request.param == "postgres" else None
    home = tmp_path_factory.mktemp(f"home-{request.param}")
    env = backend_env(request.param, home, pg_url)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_caches()
    from app.core.migrate import upgrade

    upgrade()
    yield Backend(request.param, env)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    reset_caches()


@pytest.fixture
def activate(backend: Backend) -> Backend:
    """Make `backend` the process's configuration for this test (fixtures are session-wide)."""
    os.environ.update(backend.env)
    reset_caches()
    return backend


@pytest.fixture
def client(activate):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(run_sweeper=False)) as test_client:
        yield test_client


def new_key(tenant: str | None = None) -> str:
    from app.core.db import session_scope
    from app.tenants.service import create_key

    with session_scope() as db_session:
        return create_key(db_session=db_session, tenant_name=tenant or f"t-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def api_key(activate) -> str:
    return new_key()


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}
