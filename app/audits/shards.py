"""State changes of an audit's reference shards, each one an atomic, guarded UPDATE.

As for audits (`app.audits.lifecycle`): only one worker can claim a shard, only the claiming
worker can write its progress or mark it done, and a running shard whose heartbeat is stale is
presumed lost and may be claimed again; so a redelivered or resent shard message is harmless.
A shard can only be claimed while its audit runs and no cancel was asked for.
"""

from __future__ import annotations

import logging
import shutil
import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audits.lifecycle import AuditCancelled, LostClaim, _rowcount
from app.audits.models import Audit, AuditShard
from app.core.config import Settings
from app.core.db import session_factory
from app.core.timeutil import utcnow

log = logging.getLogger(__name__)


def layout(count: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous blocks [first, stop) of `count` references over `shards` shards, the first
    ones one larger when it does not divide: the same layout on every worker."""
    shards = max(1, min(shards, count))
    size, extra = divmod(count, shards)
    blocks, first = [], 0
    for j in range(shards):
        stop = first + size + (1 if j < extra else 0)
        blocks.append((first, stop))
        first = stop
    return blocks


def ensure(db_session: Session, audit_id: str, blocks: list[tuple[int, int]]) -> list[AuditShard]:
    """The audit's shard rows, created at its first attempt; a later attempt (the audit taken
    over after its worker was lost) finds them, done shards included, and keeps their layout."""
    existing = rows(db_session, audit_id)
    if existing:
        return existing
    for j, (first, stop) in enumerate(blocks):
        db_session.add(
            AuditShard(audit_id=audit_id, shard=j, first=first, stop=stop, state="queued")
        )
    try:
        db_session.commit()
    except IntegrityError:  # created meanwhile (cannot happen under the audit's claim)
        db_session.rollback()
    return rows(db_session, audit_id)


def rows(db_session: Session, audit_id: str) -> list[AuditShard]:
    db_session.expire_all()  # other workers write these rows: read them afresh
    return list(
        db_session.scalars(
            select(AuditShard).where(AuditShard.audit_id == audit_id).order_by(AuditShard.shard)
        )
    )


def claim(
    db_session: Session,
    audit_id: str,
    shard: int,
    *,
    worker: str,
    stale_after_s: float,
    max_attempts: int,
) -> bool:
    """Take the shard if it is queued, or running with a heartbeat too old to be alive."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_after_s)
    live_audit = select(Audit.id).where(
        Audit.id == audit_id, Audit.state == "running", Audit.cancel_requested.is_(False)
    )
    result = db_session.execute(
        update(AuditShard)
        .where(
            AuditShard.audit_id == audit_id,
            AuditShard.shard == shard,
            AuditShard.attempts < max_attempts,
            AuditShard.audit_id.in_(live_audit),
            or_(
                AuditShard.state == "queued",
                and_(AuditShard.state == "running", AuditShard.heartbeat_at < stale),
            ),
        )
        .values(
            state="running",
            worker=worker,
            heartbeat_at=now,
            progress=0.0,
            attempts=AuditShard.attempts + 1,
        )
    )
    db_session.commit()
    return _rowcount(result) == 1


def _held(audit_id: str, shard: int, worker: str):
    return and_(
        AuditShard.audit_id == audit_id,
        AuditShard.shard == shard,
        AuditShard.worker == worker,
        AuditShard.state == "running",
    )


def beat(db_session: Session, audit_id: str, shard: int, *, worker: str) -> bool:
    """Refresh the heartbeat of a shard this worker still holds; False once it does not."""
    result = db_session.execute(
        update(AuditShard).where(_held(audit_id, shard, worker)).values(heartbeat_at=utcnow())
    )
    db_session.commit()
    return _rowcount(result) == 1


def report_progress(
    db_session: Session, audit_id: str, shard: int, *, worker: str, progress: float
) -> None:
    """Record the shard's progress; raise if its audit was cancelled or ended, or the shard
    was taken over."""
    result = db_session.execute(
        update(AuditShard)
        .where(_held(audit_id, shard, worker))
        .values(progress=max(0.0, min(1.0, progress)), heartbeat_at=utcnow())
    )
    db_session.commit()
    if _rowcount(result) != 1:
        raise LostClaim(f"{audit_id}/{shard}")
    audit = db_session.execute(
        select(Audit.state, Audit.cancel_requested).where(Audit.id == audit_id)
    ).one_or_none()
    if audit is None or audit.cancel_requested or audit.state != "running":
        raise AuditCancelled(audit_id)


def end(
    db_session: Session,
    audit_id: str,
    shard: int,
    *,
    worker: str,
    state: str,
    error: str | None = None,
) -> bool:
    """Finish a shard this worker holds as done, failed or cancelled; True when this call did."""
    result = db_session.execute(
        update(AuditShard)
        .where(_held(audit_id, shard, worker))
        .values(
            state=state,
            progress=1.0 if state == "done" else AuditShard.progress,
            error=error,
            finished_at=utcnow(),
        )
    )
    db_session.commit()
    return _rowcount(result) == 1


def cancel_pending(db_session: Session, audit_id: str) -> int:
    """Cancel every shard not yet done: queued messages then find nothing to claim, and a
    running shard stops at its next progress write (its audit is no longer running)."""
    result = db_session.execute(
        update(AuditShard)
        .where(AuditShard.audit_id == audit_id, AuditShard.state.in_(("queued", "running")))
        .values(state="cancelled", finished_at=utcnow())
    )
    db_session.commit()
    return _rowcount(result)


def results_dir(settings: Settings, audit_id: str) -> Path:
    """Where the audit's shard results (`<shard>.npz`) live: on the storage volume, which
    every worker shares."""
    assert settings.storage_dir is not None
    return settings.storage_dir / "shards" / audit_id


def remove_results(settings: Settings, audit_id: str) -> None:
    """Drop the shard results once the audit has ended (its report holds what they gave)."""
    shutil.rmtree(results_dir(settings, audit_id), ignore_errors=True)


class ShardHeartbeat(threading.Thread):
    """The shard row's heartbeat from a thread of its own, through silent stages (model load,
    one long epoch), like the audit's `Heartbeat`."""

    def __init__(self, audit_id: str, shard: int, worker: str, interval_s: float) -> None:
        super().__init__(name=f"heartbeat-{audit_id}-{shard}", daemon=True)
        self.audit_id, self.shard, self.worker, self.interval_s = (
            audit_id,
            shard,
            worker,
            interval_s,
        )
        self._stop_event = threading.Event()

    def __enter__(self) -> ShardHeartbeat:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(timeout=max(5.0, 2 * self.interval_s))

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                with session_factory()() as db_session:
                    if not beat(db_session, self.audit_id, self.shard, worker=self.worker):
                        return
            except Exception:
                log.warning("heartbeat of shard %s/%s not written", self.audit_id, self.shard)
