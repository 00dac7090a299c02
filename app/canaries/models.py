"""A tenant's canary set: how it was generated and every canary with its secret and split."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.models import CreatedAtMixin, IdMixin, TenantMixin


class CanarySet(IdMixin, TenantMixin, CreatedAtMixin, Base):
    __tablename__ = "canary_sets"

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
