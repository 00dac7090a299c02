"""A tenant's canary set: how it was generated and every canary with its secret and split."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.timeutil import utcnow
from app.tenants.models import new_id


class CanarySet(Base):
    __tablename__ = "canary_sets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    task: Mapped[str] = mapped_column(String(40))
    kind: Mapped[Literal["secret", "audit"]] = mapped_column(String(10))
    template: Mapped[str | None] = mapped_column(Text, nullable=True)
    alphabet: Mapped[str | None] = mapped_column(String(100), nullable=True)
    count: Mapped[int] = mapped_column(Integer)
    repetitions: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    labels: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("artifacts.id"), nullable=True)
    # Every canary as attacks.canaries.Canary.to_dict(): id, text, secret, label, inserted.
    canaries: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
