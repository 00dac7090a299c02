"""The test databases, queues and process environment: one place to point and restore them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_ADMIN_URL = os.environ.get(
    "LEAKGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LEAKGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


@dataclass
class Backend:
    """A configured service: its name (sqlite, postgres) and the LEAKGATE_* environment."""

    name: str
    env: dict[str, str]


def reset_caches() -> None:
    """Settings, engines and the Celery app are cached per process; tests switch between them."""
    from app.core.config import get_settings
    from app.core.db import engine_for
    from app.core.queue import get_celery

    get_settings.cache_clear()
    engine_for.cache_clear()
    get_celery.cache_clear()


def backend_env(name: str, home: Path, pg_url: str | None) -> dict[str, str]:
    """The settings of a service on `name` ("sqlite" or "postgres") living under `home`."""
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


@contextmanager
def environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables and the caches that read them; put both
    back afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    _apply(values)
    try:
        yield
    finally:
        _apply(saved)


def _apply(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_caches()


@contextmanager
def own_queue_on_postgres(
    pg_url: str, home: Path, *, queue: str, extra: Mapping[str, str]
) -> Iterator[dict[str, str]]:
    """The PostgreSQL backend, migrated, with a Redis queue of this test's own (so no message
    from another test reaches its workers) and `extra` settings; all put back afterwards."""
    env = {
        **backend_env("postgres", home, pg_url),
        "LEAKGATE_QUEUE_NAME": f"{queue}-{RUN_ID}-{uuid.uuid4().hex[:6]}",
        **extra,
    }
    with environ(env):
        from app.core.migrate import upgrade

        upgrade()
        yield env
