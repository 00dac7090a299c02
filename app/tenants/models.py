"""Tenants and their API keys (stored as SHA-256 hashes, never in clear)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base
from app.core.models import CreatedAtMixin, IdMixin, TenantMixin


class Tenant(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Signs webhook bodies (HMAC-SHA256), so it is kept in clear; shown to the tenant once.
    webhook_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)

    keys: Mapped[list[ApiKey]] = relationship(back_populates="tenant")


class ApiKey(IdMixin, TenantMixin, CreatedAtMixin, Base):
    __tablename__ = "api_keys"

    # Keys are 256-bit random tokens, so a plain SHA-256 is a safe one-way store.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    tenant: Mapped[Tenant] = relationship(back_populates="keys")
