"""API shapes for webhook secrets and delivery attempts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WebhookSecret(BaseModel):
    secret: str = Field(description="shown once; signs every later delivery (HMAC-SHA256)")


class DeliveryRead(BaseModel):
    url: str
    event: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    created_at: datetime
