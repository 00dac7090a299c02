"""Hooks on the life of a Celery worker process: what each forked child must redo for itself."""

from __future__ import annotations

from celery.signals import worker_process_init

from app.core.db import dispose_after_fork


@worker_process_init.connect
def _fresh_database_pools(**_kwargs: object) -> None:
    """Each prefork child opens its own database connections (see `dispose_after_fork`).

    `os.register_at_fork` already does this at every fork; the signal states it where Celery
    documents per-child set-up, and still holds if a pool implementation starts children
    without `os.fork`.
    """
    dispose_after_fork()
