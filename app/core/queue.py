"""The Celery app and the task names: all the API knows of the workers.

The API sends tasks by name (`send_task`) and never imports `workers`; the worker process loads
the task modules named in `TASK_MODULES` when it starts. Light to import: no torch here.

Production uses Redis; the embedded mode uses Kombu's SQLAlchemy transport on a SQLite file, so
the same task code runs with no broker server.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from app.core.config import get_settings

RUN_AUDIT_TASK = "leakgate.run_audit"
RUN_SHARD_TASK = "leakgate.run_reference_shard"
DELIVER_WEBHOOK_TASK = "leakgate.deliver_webhook"
# Imported by a worker at start-up (Celery's `include`), never by the API.
TASK_MODULES = ("workers.tasks", "workers.webhooks")


@lru_cache
def get_celery() -> Celery:
    settings = get_settings()
    settings.ensure_dirs()
    celery = Celery("leakgate", broker=settings.broker_url, include=list(TASK_MODULES))
    celery.conf.update(
        task_default_queue=settings.queue_name,
        task_ignore_result=True,  # state lives in the audits table, not in a result backend
        task_acks_late=True,  # a worker that dies mid-audit leaves the message for another
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # one long audit at a time per process
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_hard_time_limit_s,
        # Kombu's SQLAlchemy transport hands these options to create_engine, so Redis only.
        broker_transport_options=(
            {}
            if settings.embedded_broker
            else {"visibility_timeout": settings.visibility_timeout_s}
        ),
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return celery
