"""API shapes for canary sets: what to generate, and what the owner reads back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from attacks.canaries.generation import DIGITS

MAX_SECRET_CANARIES = 1000
"""Secret canaries are few (tens to hundreds): each costs a candidate-space scan per audit."""


class CanarySetCreate(BaseModel):
    """Secret canaries come from a template; audit canaries from a template or from the texts
    of a dataset artifact, each inserted once, with a random label per canary (classifiers)."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["text-classification", "causal-lm"] = "text-classification"
    kind: Literal["secret", "audit"] = "secret"
    template: str | None = Field(
        default="pin",
        max_length=500,
        description="built-in name (pin, phone, account) or text with {d} / {d*n} slots",
    )
    alphabet: str = Field(default=DIGITS, min_length=2, max_length=100)
    count: int = Field(ge=1, le=100_000)
    repetitions: int = Field(default=1, ge=1, le=1000)
    seed: int | None = Field(default=None, ge=0, lt=2**62, description="default: random")
    labels: list[str] | None = Field(
        default=None, max_length=10_000, description="classifiers: labels to draw from"
    )
    dataset: str | None = Field(
        default=None, description="audit canaries: dataset artifact whose texts to use"
    )

    @model_validator(mode="after")
    def _consistent(self) -> CanarySetCreate:
        if self.task == "text-classification" and not self.labels:
            raise ValueError("text-classification canaries need labels to draw from")
        if self.task == "causal-lm" and self.labels:
            raise ValueError("causal-lm canaries take no labels")
        if self.dataset is not None:
            if self.kind != "audit":
                raise ValueError("a dataset gives audit canaries only (kind audit)")
            self.template = None
        elif self.template is None:
            raise ValueError("give a template (or a dataset, for audit canaries)")
        if self.kind == "audit" and self.repetitions != 1:
            raise ValueError("audit canaries are inserted once each: repetitions must be 1")
        if self.kind == "secret" and self.count > MAX_SECRET_CANARIES:
            raise ValueError(f"at most {MAX_SECRET_CANARIES} secret canaries per set")
        return self


class CanaryRead(BaseModel):
    """One canary; `text` and `secret` are masked unless the owner asks to reveal them."""

    id: str
    text: str | None
    secret: str | None
    label: str | None
    inserted: bool
    repetitions: int


class CanarySetRead(BaseModel):
    id: str
    task: str
    kind: str
    template: str | None
    alphabet: str | None
    count: int
    repetitions: int
    seed: int | None = Field(description="masked unless revealed: it regenerates the secrets")
    labels: list[str] | None
    dataset: str | None
    n_inserted: int
    n_held_out: int
    revealed: bool
    created_at: datetime
    canaries: list[CanaryRead]
    links: dict[str, str]


class CanarySetCreated(CanarySetRead):
    """The new set, and the records to mix into training (inserted canaries, repeated)."""

    records: list[dict]
