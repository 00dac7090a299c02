"""A tenant's audit split: a candidate dataset, the seeded coin, and the two halves it gave."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.models import CreatedAtMixin, IdMixin, TenantMixin


class AuditSplit(IdMixin, TenantMixin, CreatedAtMixin, Base):
    __tablename__ = "audit_splits"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"))
    members_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"))
    non_members_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"))
    seed: Mapped[int] = mapped_column(BigInteger)
    seed_source: Mapped[str] = mapped_column(String(10))  # "service" | "client"
    inclusion_probability: Mapped[float] = mapped_column(Float)
    n_candidates: Mapped[int] = mapped_column(Integer)
    n_members: Mapped[int] = mapped_column(Integer)
    n_non_members: Mapped[int] = mapped_column(Integer)
    # Record ids of the candidates the coin made members (the rest are non-members).
    member_ids: Mapped[list[Any]] = mapped_column(JSON)
