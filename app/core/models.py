"""Columns most tables share (id, owning tenant, creation time), written once as mixins.

Every table imports these; `app.core.tables` imports every table (for Alembic and tests).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.timeutil import utcnow


def new_id() -> str:
    """A random 32-hex-digit id: unguessable, so ids in URLs reveal nothing about order."""
    return uuid.uuid4().hex


class IdMixin:
    """Mixin columns sort first in CREATE TABLE, where the migrations put them too."""

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, sort_order=-2)


class TenantMixin:
    """Rows a tenant owns; every query filters on it, hence the index."""

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True, sort_order=-1)


class CreatedAtMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
