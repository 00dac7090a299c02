"""Celery tasks. Thin: claim the audit, run the pipeline, record how it ended."""

from __future__ import annotations

import logging
import os
import socket

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.audits import lifecycle, shards
from app.audits.enums import FINAL_STATES, AuditState
from app.audits.models import Audit, AuditShard
from app.core.config import Settings, get_settings
from app.core.db import session_factory
from app.webhooks.queue import enqueue_delivery
from workers import process  # noqa: F401  (per-child hooks: fresh database pools)
from workers.celery_app import RUN_AUDIT_TASK, RUN_SHARD_TASK, celery_app
from workers.context import Heartbeat

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@celery_app.task(name=RUN_AUDIT_TASK, acks_late=True, reject_on_worker_lost=True)
def run_audit(audit_id: str) -> str:
    """Idempotent: a second delivery of a claimed or finished audit does nothing. An audit that
    this run brought to an end has its webhook queued."""
    outcome = _run_audit(audit_id)
    if outcome in FINAL_STATES:
        shards.remove_results(get_settings(), audit_id)  # reference shards' files, if any
        with session_factory()() as db_session:
            audit = db_session.get(Audit, audit_id)
            if audit is not None and audit.state == outcome:
                enqueue_delivery(audit)
    return outcome


def _run_audit(audit_id: str) -> str:
    settings = get_settings()
    worker = worker_name()
    with session_factory()() as db_session:
        if not lifecycle.claim(
            db_session,
            audit_id,
            worker=worker,
            stale_after_s=settings.stale_after_s,
            max_attempts=settings.max_attempts,
        ):
            log.info("audit %s is not claimable (taken, finished or cancelled); skipping", audit_id)
            return "skipped"
        with Heartbeat(audit_id, worker, settings.heartbeat_interval_s):
            return _run_claimed(db_session, audit_id, worker, settings)


def _run_claimed(db_session: Session, audit_id: str, worker: str, settings: Settings) -> str:
    from workers.pipeline import run_pipeline  # torch is imported here, in the task only

    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)

    try:
        run_pipeline(db_session, audit_id, worker=worker, settings=settings)
    except lifecycle.AuditCancelled:
        lifecycle.end(
            db_session,
            audit_id,
            worker=worker,
            state=AuditState.CANCELLED,
            message="cancelled by the user",
        )
        return AuditState.CANCELLED
    except lifecycle.LostClaim:
        log.warning("audit %s was taken over by another worker; stopping", audit_id)
        return "lost"
    except SoftTimeLimitExceeded:
        lifecycle.end(
            db_session,
            audit_id,
            worker=worker,
            state=AuditState.FAILED,
            message=f"exceeded the time limit of {settings.task_soft_time_limit_s} s",
        )
        return AuditState.FAILED
    except OperationalError:
        # The database went away (restart, failover, network): not the audit's fault, and
        # nothing can be recorded now. The heartbeat stops with this task, so the sweeper hands
        # the audit to a new delivery once it is stale; `max_attempts` bounds the retries.
        log.warning("audit %s interrupted by a database error; left for a retry", audit_id)
        return "interrupted"
    except Exception as exc:
        log.exception("audit %s failed", audit_id)
        db_session.rollback()
        lifecycle.end(
            db_session,
            audit_id,
            worker=worker,
            state=AuditState.FAILED,
            message=f"{type(exc).__name__}: {exc}"[:2000],
        )
        return AuditState.FAILED
    return AuditState.SUCCEEDED


@celery_app.task(name=RUN_SHARD_TASK, acks_late=True, reject_on_worker_lost=True)
def run_reference_shard(audit_id: str, shard: int) -> str:
    """Train and score one shard of an audit's reference models (`workers.shards`).

    Idempotent by (audit, shard): a message for a shard that is done, held by a live worker,
    cancelled, or whose audit is not running does nothing; a shard whose worker was lost is
    claimed again (by a resent message or by the audit's coordinator) and re-run alone."""
    settings = get_settings()
    worker = worker_name()
    with session_factory()() as db_session:
        if not shards.claim(
            db_session,
            audit_id,
            shard,
            worker=worker,
            stale_after_s=settings.stale_after_s,
            max_attempts=settings.max_attempts,
        ):
            log.info("shard %s/%s is not claimable; skipping", audit_id, shard)
            return "skipped"
        row = db_session.get(AuditShard, (audit_id, shard))
        audit = db_session.get(Audit, audit_id)
        assert row is not None and audit is not None
        try:
            # The heartbeat first: importing torch in a cold worker can outlast stale_after_s.
            with shards.ShardHeartbeat(audit_id, shard, worker, settings.heartbeat_interval_s):
                from workers.shards import run_shard_task  # torch: in the task only

                if settings.torch_threads:
                    import torch

                    torch.set_num_threads(settings.torch_threads)
                return run_shard_task(db_session, audit, row, worker=worker, settings=settings)
        except OperationalError:
            log.warning(
                "shard %s/%s interrupted by a database error; left for a retry", audit_id, shard
            )
            return "interrupted"
