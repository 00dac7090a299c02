"""API shapes for artifacts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class ArtifactKind(StrEnum):
    model = "model"
    dataset = "dataset"


class ArtifactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: ArtifactKind
    filename: str
    sha256: str
    size_bytes: int
    meta: dict[str, Any]
    created_at: datetime


class ArtifactPage(BaseModel):
    """The page shape every listing shares (see `AuditPage`)."""

    items: list[ArtifactRead]
    total: int
    limit: int
    offset: int
