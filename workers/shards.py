"""One audit's reference models over many workers: shards, each a Celery task.

The audit's own task is the coordinator. It writes one row per shard (`app.audits.shards`),
sends a `leakgate.run_reference_shard` message per shard not yet done, then works too: it
claims a queued shard (or one whose worker went silent) and runs it itself, and otherwise
waits, aggregating the shards' progress into the audit's and watching for a cancel. When
every shard is done it loads their logits and the audit goes on exactly as with one shard
(same attacks, same recipe, same report).

Why a waiting coordinator and not a chord: the service keeps no result backend (state lives in
the database), a chord's counter never completes when a header task is lost until the broker
redelivers it (hours: the visibility timeout outlasts the longest task), and a chord callback
has no claim or heartbeat. Here every shard is claimed by a guarded UPDATE, keeps a heartbeat,
and is retried alone: a shard whose heartbeat is stale is claimed again (by the coordinator or
by a resent message) while the others' results stay; a late redelivery of the old message
finds the shard done or held and does nothing. Because the coordinator also runs shards, an
audit never waits on a worker that is not there: with one worker it trains every shard itself.

A shard's result (logits of its references on every audited and population text, float32, and
its timings) is a `.npz` file under `<storage>/shards/<audit>/`, written to a temporary name and
renamed before the row says `done`; the directory is removed when the audit ends. Workers
already share the storage volume (they unpack the audited model from it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.artifacts.storage import Storage
from app.audits import lifecycle, shards
from app.audits.models import Audit, AuditShard
from app.audits.schemas import StoredAuditSpec
from app.audits.shards import ShardHeartbeat
from app.core.config import Settings
from app.core.queue import RUN_SHARD_TASK, get_celery
from app.core.timeutil import utcnow
from workers.context import AuditContext, ProgressReporter
from workers.references import ReferenceSetup, load_reference_setup

log = logging.getLogger(__name__)

POLL_S = 0.5


class ShardFailed(Exception):
    """A shard ended in error (its message says why) or gave up after its last attempt."""


@dataclass
class ShardedReferences:
    logits: np.ndarray  # [K, n_texts, C], references in order
    training_seconds: float  # summed over shards: compute spent, not wall time
    scoring_seconds: float  # likewise
    together: bool
    blocks: list[tuple[int, int]]  # the layout the shards ran (fixed at the first attempt)


def result_path(settings: Settings, audit_id: str, shard: int) -> Path:
    return shards.results_dir(settings, audit_id) / f"{shard}.npz"


def train_and_score(
    ctx: AuditContext, setup: ReferenceSetup, row: AuditShard, progress: ShardProgress
) -> Path:
    """Train references [first, stop) and score every text with them; write the result file.

    Training is 80% of the shard's progress, scoring the rest (about their cost ratio)."""
    only = list(range(row.first, row.stop))
    began = time.perf_counter()
    references = setup.train(lambda done, total: progress(0.8 * done / max(total, 1)), only)
    logits = references.logits(
        setup.texts,
        batch_size=ctx.spec.options.batch_size,
        max_length=ctx.spec.options.max_length,
        progress=lambda done, total: progress(0.8 + 0.2 * done / max(total, 1)),
    )
    scoring_s = time.perf_counter() - began - references.training_seconds
    path = result_path(ctx.settings, ctx.audit.id, row.shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{row.shard}.{os.getpid()}.{threading.get_ident()}.npz")
    np.savez(
        tmp,
        logits=logits.astype(np.float32, copy=False),
        first=row.first,
        training_seconds=references.training_seconds,
        scoring_seconds=max(0.0, scoring_s),
        trained_together=references.trained_together,
    )
    os.replace(tmp, path)  # whole or absent: a reader never sees half a file
    return path


class ShardProgress(ProgressReporter):
    """A shard's progress in [0, 1] on its row (heartbeat included), at most every
    `min_interval_s`; raises when the audit was cancelled or the shard taken over. `on_write`
    lets the coordinator, when it runs a shard itself, refresh the audit's progress too."""

    def __init__(
        self,
        db_session: Session,
        audit_id: str,
        shard: int,
        worker: str,
        on_write: Callable[[], object] | None = None,
        min_interval_s: float = 0.5,
    ) -> None:
        super().__init__(db_session, audit_id, worker, min_interval_s)
        self.shard, self.on_write = shard, on_write

    def __call__(self, progress: float, stage: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.min_interval_s:
            self._last = now
            shards.report_progress(
                self.db_session, self.audit_id, self.shard, worker=self.worker, progress=progress
            )
            if self.on_write is not None:
                self.on_write()


def run_claimed_shard(
    ctx: AuditContext,
    setup: ReferenceSetup,
    row: AuditShard,
    worker: str,
    on_write: Callable[[], object] | None = None,
) -> str:
    """Run a shard this worker claimed (its heartbeat running) and record how it ended: done,
    failed, cancelled or lost (taken over; nothing written). A database outage propagates: the
    heartbeat stops with the task and the shard is claimed again once stale."""
    db_session = ctx.db_session
    progress = ShardProgress(db_session, ctx.audit.id, row.shard, worker, on_write)
    try:
        train_and_score(ctx, setup, row, progress)
    except lifecycle.AuditCancelled:
        shards.end(db_session, ctx.audit.id, row.shard, worker=worker, state="cancelled")
        return "cancelled"
    except lifecycle.LostClaim:
        return "lost"
    except OperationalError:
        raise
    except Exception as exc:
        log.exception("shard %s/%s failed", ctx.audit.id, row.shard)
        db_session.rollback()
        message = f"reference shard {row.shard}: {type(exc).__name__}: {exc}"[:2000]
        shards.end(
            db_session, ctx.audit.id, row.shard, worker=worker, state="failed", error=message
        )
        return "failed"
    done = shards.end(db_session, ctx.audit.id, row.shard, worker=worker, state="done")
    return "done" if done else "lost"


def run_sharded(
    ctx: AuditContext, setup: ReferenceSetup, n_shards: int, *, start: float, end: float
) -> ShardedReferences:
    """Coordinate the audit's shards (see the module docstring) and gather their logits."""
    settings, audit_id, db_session = ctx.settings, ctx.audit.id, ctx.db_session
    worker = ctx.progress.worker
    count = len(setup.pool_masks)
    rows = shards.ensure(db_session, audit_id, shards.layout(count, n_shards))
    if settings.reference_fanout:
        celery = get_celery()
        for row in rows:
            if row.state != "done":
                celery.send_task(RUN_SHARD_TASK, args=[audit_id, row.shard])

    def refresh(force: bool = False) -> list[AuditShard]:
        """Read the shards; put their mean progress on the audit (which checks for cancel)."""
        current = shards.rows(db_session, audit_id)
        done = sum(r.state == "done" for r in current)
        mean = sum(r.progress for r in current) / len(current)
        stage = f"reference shards: {done}/{len(current)} done"
        ctx.progress(start + (end - start) * mean, stage, force=force)
        return current

    try:
        ctx.progress(start, f"reference shards: 0/{len(rows)} done", force=True)
        while True:
            current = refresh(force=True)
            failed = [r for r in current if r.state in ("failed", "cancelled")]
            if failed:
                raise ShardFailed(failed[0].error or f"reference shard {failed[0].shard} stopped")
            if all(r.state == "done" for r in current):
                break
            exhausted = [r for r in current if r.attempts >= settings.max_attempts]
            mine = None
            for row in current:
                if row.state in ("queued", "running") and shards.claim(
                    db_session,
                    audit_id,
                    row.shard,
                    worker=worker,
                    stale_after_s=settings.stale_after_s,
                    max_attempts=settings.max_attempts,
                ):
                    mine = row
                    break
            if mine is not None:
                with ShardHeartbeat(audit_id, mine.shard, worker, settings.heartbeat_interval_s):
                    outcome = run_claimed_shard(ctx, setup, mine, worker, on_write=refresh)
                log.info(
                    "audit %s: shard %s %s (in the coordinator)", audit_id, mine.shard, outcome
                )
                continue
            stuck = [r for r in exhausted if r.state != "done" and _is_stale(r, settings)]
            if stuck:
                raise ShardFailed(
                    f"reference shard {stuck[0].shard} gave up after "
                    f"{stuck[0].attempts} attempts: its worker was lost each time"
                )
            time.sleep(POLL_S)
    except (lifecycle.LostClaim, OperationalError):
        raise  # the audit goes on elsewhere (taken over, or retried once stale): shards too
    except BaseException:  # cancelled, a shard failed, the time limit, any error: the audit ends
        db_session.rollback()
        try:
            shards.cancel_pending(db_session, audit_id)  # pending shards stop; the results
        except Exception:  # are removed when the audit ends (workers.tasks)
            log.warning("audit %s: shards not cancelled", audit_id, exc_info=True)
        raise
    return _gather(settings, audit_id, current)


def _is_stale(row: AuditShard, settings: Settings) -> bool:
    beat = row.heartbeat_at
    if beat is None:
        return False
    if beat.tzinfo is None:  # SQLite drops the zone
        beat = beat.replace(tzinfo=UTC)
    return utcnow() - beat > timedelta(seconds=settings.stale_after_s)


def _gather(settings: Settings, audit_id: str, rows: list[AuditShard]) -> ShardedReferences:
    logits, training_s, scoring_s, together = [], 0.0, 0.0, True
    for row in rows:
        with np.load(result_path(settings, audit_id, row.shard)) as result:
            if int(result["first"]) != row.first:
                raise ShardFailed(f"reference shard {row.shard}: result of another layout")
            block = result["logits"]
            if block.shape[0] != row.stop - row.first:
                raise ShardFailed(f"reference shard {row.shard}: {block.shape[0]} models stored")
            logits.append(block)
            training_s += float(result["training_seconds"])
            scoring_s += float(result["scoring_seconds"])
            together = together and bool(result["trained_together"])
    blocks = [(row.first, row.stop) for row in rows]
    return ShardedReferences(np.concatenate(logits), training_s, scoring_s, together, blocks)


def run_shard_task(
    db_session: Session, audit: Audit, row: AuditShard, *, worker: str, settings: Settings
) -> str:
    """A shard task's body, once claimed: rebuild the setup from the spec, as the audit's
    task does, and run the shard. An error while loading fails the shard, as one in training."""
    from attacks.targets import TextClassifier

    assert settings.storage_dir is not None
    spec = StoredAuditSpec.model_validate(audit.spec)
    progress = ShardProgress(db_session, audit.id, row.shard, worker)
    ctx = AuditContext(
        db_session=db_session,
        audit=audit,
        spec=spec,
        settings=settings,
        storage=Storage(settings.storage_dir),
        progress=progress,
    )
    try:
        assert spec.target is not None
        target_dir = ctx.model_dir(spec.target)
        setup = load_reference_setup(ctx, target_dir, TextClassifier.load(target_dir))
    except OperationalError:
        raise
    except Exception as exc:
        log.exception("shard %s/%s could not start", audit.id, row.shard)
        db_session.rollback()
        message = f"reference shard {row.shard}: {type(exc).__name__}: {exc}"[:2000]
        shards.end(db_session, audit.id, row.shard, worker=worker, state="failed", error=message)
        return "failed"
    return run_claimed_shard(ctx, setup, row, worker)
