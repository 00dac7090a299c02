"""Shared fixtures: a configured service per backend (SQLite + embedded broker, PostgreSQL + Redis).

PostgreSQL tests use the `test` database with a schema of their own per test run (dropped at
the end); Redis tests use a queue name of their own per run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from tests.utils.env import PG_ADMIN_URL, RUN_ID, Backend, backend_env, environ, reset_caches
from tests.utils.factories import new_key


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `cuda` where torch sees no CUDA device (torch is imported only when
    such a test was collected)."""
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in marked:
        item.add_marker(skip)


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


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request, tmp_path_factory) -> Iterator[Backend]:
    """One configured, migrated service per backend, shared by the tests of a run."""
    pg_url = request.getfixturevalue("pg_schema") if request.param == "postgres" else None
    home = tmp_path_factory.mktemp(f"home-{request.param}")
    env = backend_env(request.param, home, pg_url)
    with environ(env):
        from app.core.migrate import upgrade

        upgrade()
        yield Backend(request.param, env)


@pytest.fixture
def activate(backend: Backend) -> Backend:
    """Make `backend` the process's configuration for this test (fixtures are session-wide)."""
    os.environ.update(backend.env)
    reset_caches()
    return backend


@pytest.fixture
def set_env() -> Iterator[Callable[..., None]]:
    """`set_env(NAME=value, OTHER=None)`: set (None: unset) variables for this test, with the
    cached settings, engines and Celery app following; all put back after the test."""
    with ExitStack() as stack:
        yield lambda **values: stack.enter_context(environ(values))


@pytest.fixture
def client(activate):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(run_sweeper=False)) as test_client:
        yield test_client


@pytest.fixture
def api_key(activate) -> str:
    return new_key()


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}
