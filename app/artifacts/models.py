"""Uploaded artifacts: a tenant's handle on a content-addressed blob (model archive or dataset)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.models import CreatedAtMixin, IdMixin, TenantMixin


class Artifact(IdMixin, TenantMixin, CreatedAtMixin, Base):
    __tablename__ = "artifacts"

    kind: Mapped[str] = mapped_column(String(20))  # "model" | "dataset"
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # What validation learned: dataset record count and labels, model type and labels.
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
