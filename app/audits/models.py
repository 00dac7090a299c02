"""Audit jobs and their stored reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.audits.enums import FINAL_STATES, AuditState
from app.core.db import Base
from app.core.models import CreatedAtMixin, IdMixin, TenantMixin
from app.policies.enums import GateResult

# Every state in lifecycle order (FINAL_STATES, from app.audits.enums, is re-exported here).
STATES = tuple(AuditState)
__all__ = ["FINAL_STATES", "STATES", "Audit", "Report"]


class Audit(IdMixin, TenantMixin, CreatedAtMixin, Base):
    __tablename__ = "audits"

    model_name: Mapped[str] = mapped_column(String(200), index=True)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    task: Mapped[str] = mapped_column(String(40))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)

    state: Mapped[AuditState] = mapped_column(String(20), default=AuditState.QUEUED, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)

    # Summary columns so that lists and filters need not open the report.
    verdict: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    auc: Mapped[float | None] = mapped_column(Float, nullable=True)
    epsilon_lower_bound: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Release gate: the policy in force at submission (a snapshot, so later edits do not
    # rewrite history), its outcome and one check per rule.
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    gate: Mapped[GateResult | None] = mapped_column(String(10), nullable=True, index=True)
    gate_reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)

    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Report(CreatedAtMixin, Base):
    __tablename__ = "reports"

    audit_id: Mapped[str] = mapped_column(ForeignKey("audits.id"), primary_key=True)
    schema_version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditShard(Base):
    """One shard of an audit's reference-model work: references [first, stop), trained and
    scored by one Celery task. The row is that task's claim, heartbeat and progress; the result
    (per-reference logits) is a file in storage, written before the row says `done`."""

    __tablename__ = "audit_shards"

    audit_id: Mapped[str] = mapped_column(ForeignKey("audits.id"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    first: Mapped[int] = mapped_column(Integer)
    stop: Mapped[int] = mapped_column(Integer)
    # queued -> running -> done | failed | cancelled; running with a stale heartbeat is lost.
    state: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
