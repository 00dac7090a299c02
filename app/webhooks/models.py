"""Every attempt to deliver an audit's completion to its callback URL."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.models import CreatedAtMixin, IdMixin


class WebhookDelivery(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "webhook_deliveries"

    audit_id: Mapped[str] = mapped_column(ForeignKey("audits.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    event: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
