"""API shapes for audit splits: what to split, and what the owner reads back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AuditSplitCreate(BaseModel):
    """Candidate records to split; each distinct record becomes a member with probability 1/2."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="dataset artifact id of the candidate records")
    seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**62,
        description="default: drawn by the service (secrets); a given seed is recorded as such",
    )
    inclusion_probability: float = Field(
        default=0.5, description="fixed at 1/2: the fair coin the one-run bounds are proven for"
    )

    @field_validator("inclusion_probability")
    @classmethod
    def _fair_coin(cls, value: float) -> float:
        if value != 0.5:
            raise ValueError(
                "inclusion_probability is fixed at 0.5: the one-run bounds leakgate uses are "
                "proven for a fair coin"
            )
        return value


class AuditSplitRead(BaseModel):
    id: str
    dataset: str = Field(description="the candidate dataset artifact")
    members: str = Field(description="dataset artifact of the members: train on exactly these")
    non_members: str = Field(description="dataset artifact of the non-members: keep them out")
    seed: int
    seed_source: Literal["service", "client"]
    inclusion_probability: float
    n_candidates: int
    n_members: int
    n_non_members: int
    created_at: datetime
    links: dict[str, str]
