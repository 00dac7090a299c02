"""API shapes for audits: the submitted spec and what a poll returns."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from attacks.mia import ATTACKS
from attacks.report import DPClaim

DEFAULT_ATTACKS = ["loss", "confidence"]


class ModelLabel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/@:+-]*$")
    version: str | None = Field(default=None, max_length=100)


class AuditOptions(BaseModel):
    """Knobs with safe defaults; bounded so that one spec cannot run for ever."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=32, ge=1, le=1024)
    max_length: int = Field(default=128, ge=8, le=4096)
    n_bootstrap: int = Field(default=1000, ge=100, le=20000)
    confidence: float = Field(default=0.95, ge=0.5, le=0.999)
    seed: int = 0


class AuditSpec(BaseModel):
    """What to audit. Artifact ids come from POST /v1/artifacts."""

    model_config = ConfigDict(extra="forbid")

    model: ModelLabel
    task: Literal["text-classification"] = "text-classification"
    target: str = Field(description="model artifact id")
    members: str = Field(description="dataset artifact id: records the model trained on")
    non_members: str = Field(description="dataset artifact id: records it did not train on")
    attacks: list[str] = Field(default_factory=lambda: list(DEFAULT_ATTACKS), min_length=1)
    dp_claim: DPClaim | None = None
    options: AuditOptions = Field(default_factory=AuditOptions)

    @field_validator("attacks")
    @classmethod
    def _known_attacks(cls, value: list[str]) -> list[str]:
        unknown = [a for a in value if a not in ATTACKS]
        if unknown:
            raise ValueError(f"unknown attack(s) {unknown}; known: {sorted(ATTACKS)}")
        if len(set(value)) != len(value):
            raise ValueError("attacks must not repeat")
        return value


AuditState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ModelRef(BaseModel):
    name: str
    version: str | None


class AuditRead(BaseModel):
    id: str
    model: ModelRef
    task: str
    state: AuditState
    progress: float
    stage: str | None
    error: str | None
    cancel_requested: bool
    verdict: str | None
    auc: float | None
    epsilon_lower_bound: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]


class AuditPage(BaseModel):
    items: list[AuditRead]
    total: int
    limit: int
    offset: int
