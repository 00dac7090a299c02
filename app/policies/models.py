"""Release-gate policies: a tenant default and optional per-model-name overrides."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.models import CreatedAtMixin, IdMixin, TenantMixin
from app.core.timeutil import utcnow


class Policy(IdMixin, TenantMixin, CreatedAtMixin, Base):
    """One policy; `model_name` is None for the tenant's default."""

    __tablename__ = "policies"
    __table_args__ = (
        UniqueConstraint("tenant_id", "model_name"),
        # NULLs are distinct in a unique constraint: one default per tenant needs its own index.
        Index(
            "uq_policies_tenant_default",
            "tenant_id",
            unique=True,
            postgresql_where=text("model_name IS NULL"),
            sqlite_where=text("model_name IS NULL"),
        ),
    )

    model_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
