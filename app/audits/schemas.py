"""API shapes for audits: the submitted spec and what a poll returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, UrlConstraints, model_validator

from app.audits.enums import AuditState
from app.policies.enums import GateResult
from app.policies.schemas import GateReason, PolicyRead
from attacks.enums import AttackGroup
from attacks.mia import ATTACKS, ATTACKS_BY_GROUP
from attacks.report import DPClaim, DPSGDParameters

Task = Literal["text-classification", "causal-lm", "predictions"]

CLASSIFIER_THRESHOLD_ATTACKS = ("loss", "confidence", "probability", "hinge", "modified_entropy")
# LiRA and RMIA variants: the registry knows which attacks need reference models.
REFERENCE_ATTACKS = ATTACKS_BY_GROUP[AttackGroup.REFERENCE]
LM_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus", "reference_ratio")
ATTACKS_BY_TASK: dict[str, tuple[str, ...]] = {
    "text-classification": CLASSIFIER_THRESHOLD_ATTACKS + REFERENCE_ATTACKS,
    "predictions": CLASSIFIER_THRESHOLD_ATTACKS,
    # LiRA and RMIA on a causal LM: the target is a LoRA adapter, its references LoRA
    # adapters over the same base model (attacks.reference.lora).
    "causal-lm": LM_ATTACKS + REFERENCE_ATTACKS,
}


class ModelLabel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/@:+-]*$")
    version: str | None = Field(default=None, max_length=100)


class AuditOptions(BaseModel):
    """Knobs with safe defaults; bounded so that one spec cannot run for ever."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="records per forward pass; default (null): 32 on a CPU worker, sized to "
        "the free memory on a GPU worker (halved on an out-of-memory error)",
    )
    max_length: int = Field(default=128, ge=8, le=4096)
    n_bootstrap: int = Field(default=1000, ge=100, le=20000)
    confidence: float = Field(default=0.95, ge=0.5, le=0.999)
    min_k: float = Field(default=0.2, gt=0, le=1, description="k of Min-K% and Min-K%++")
    seed: int = 0


class TrainOptions(BaseModel):
    """Fine-tuning hyperparameters for reference models the worker trains."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=10, ge=1, le=200)
    lr: float = Field(default=1e-3, gt=0, le=1)
    batch_size: int = Field(default=32, ge=1, le=1024)
    weight_decay: float = Field(default=0.0, ge=0, le=1)


class UploadedReference(BaseModel):
    """A reference model the pipeline trained itself, and which records it trained on."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="model artifact id")
    trained_on: list[str] = Field(
        max_length=1_000_000,
        description="ids of the audited or population records in its training set",
    )


class ReferenceSpec(BaseModel):
    """Reference models for LiRA/RMIA: trained by the worker, or uploaded with their splits."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["online", "offline"] = Field(
        default="online",
        description="online: audited records are in half of the references; offline: in none",
    )
    count: int = Field(default=8, ge=1, le=64, description="models to train")
    train: TrainOptions = Field(default_factory=TrainOptions)
    base_model: str | None = Field(
        default=None, description="model artifact to fine-tune from (default: fresh weights)"
    )
    uploaded: list[UploadedReference] = Field(default_factory=list, max_length=64)
    shards: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="train the references in this many shards, each a task any worker may "
        "take (default: the server's LEAKGATE_REFERENCE_SHARDS); at most `count`",
    )

    @model_validator(mode="after")
    def _shards_fit(self) -> ReferenceSpec:
        if self.shards is not None and self.shards > self.count:
            raise ValueError(
                f"references.shards ({self.shards}) cannot exceed references.count "
                f"({self.count}): every shard trains at least one reference model"
            )
        return self


# Fields of the report's DPClaim that only the server computes.
SERVER_CLAIM_FIELDS = ("accounted_epsilon", "accountant", "accountants")

MembershipSource = Literal["service", "pipeline"]


class DPClaimSpec(BaseModel):
    """The DP guarantee the owner claims, as submitted: a declared epsilon, or the DP-SGD
    parameters the server accounts for at submission (the report's `DPClaim` holds the result).
    """

    model_config = ConfigDict(extra="forbid")

    epsilon: float | None = Field(default=None, gt=0, description="declared epsilon")
    delta: float = Field(default=1e-5, ge=0, lt=1)
    dp_sgd: DPSGDParameters | None = Field(
        default=None, description="DP-SGD parameters; the server's accountants give epsilon"
    )
    max_record_occurrences: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="most times one record may occur in training: a record occurring k times "
        "is protected only as a group of k, so the claim checked is the group claim",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_server_fields(cls, data: Any) -> Any:
        """A client-supplied epsilon is never trusted as the accountant's (issue 10)."""
        if isinstance(data, dict):
            for name in SERVER_CLAIM_FIELDS:
                if name in data:
                    raise ValueError(f"{name} is computed by the server; remove it")
        return data

    @model_validator(mode="after")
    def _something_to_check(self) -> DPClaimSpec:
        if self.epsilon is None and self.dp_sgd is None:
            raise ValueError("a DP claim needs epsilon, or dp_sgd parameters to account for")
        return self


class AuditSpec(BaseModel):
    """What to audit. Artifact ids come from POST /v1/artifacts; a split from
    POST /v1/audit-splits stands for members and non-members."""

    model_config = ConfigDict(extra="forbid")

    model: ModelLabel
    task: Task = "text-classification"
    target: str | None = Field(default=None, description="model artifact id (not for predictions)")
    base_model: str | None = Field(
        default=None,
        description="model artifact id of the base model when target is a PEFT/LoRA adapter "
        "(adapter_config.json + adapter_model.safetensors); the worker loads the adapter over it",
    )
    members: str | None = Field(
        default=None, description="dataset artifact id: records the model trained on"
    )
    non_members: str | None = Field(
        default=None, description="dataset artifact id: records it did not train on"
    )
    split: str | None = Field(
        default=None,
        description="audit split id (POST /v1/audit-splits): its members and non-members, "
        "drawn by the service's coin, instead of members and non_members",
    )
    population: str | None = Field(
        default=None, description="dataset artifact id: more records from the same distribution"
    )
    reference_lm: str | None = Field(
        default=None, description="causal-lm: a reference language model artifact"
    )
    evaluation: str | None = Field(
        default=None,
        description="dataset artifact id: labelled records the model's accuracy is measured on "
        "(default: the non-members); reported as utility next to the leakage",
    )
    attacks: list[str] | None = Field(default=None, description="default: by task and inputs")
    references: ReferenceSpec | None = None
    dp_claim: DPClaimSpec | None = None
    canary_set: str | None = Field(
        default=None, description="canary set id (POST /v1/canary-sets) planted in training"
    )
    include_text: bool = Field(
        default=False, description="put record text and canary secrets in the report"
    )
    records_at_risk: int = Field(default=20, ge=0, le=1000)
    options: AuditOptions = Field(default_factory=AuditOptions)
    callback_url: Annotated[HttpUrl, UrlConstraints(max_length=2000)] | None = Field(
        default=None,
        description="http(s) URL POSTed a signed summary when the audit ends (webhook secret "
        "from POST /v1/webhook-secret)",
    )

    @model_validator(mode="after")
    def _membership(self) -> AuditSpec:
        if self.split is not None:
            given = [f for f in ("members", "non_members") if getattr(self, f) is not None]
            if given:
                raise ValueError(
                    f"a split gives members and non-members: remove {' and '.join(given)}"
                )
        elif self.members is None or self.non_members is None:
            raise ValueError("give members and non_members dataset artifacts, or a split")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> AuditSpec:
        if self.task == "predictions":
            if self.target is not None:
                raise ValueError("task predictions takes no target model: upload outputs instead")
        elif self.target is None:
            raise ValueError(f"task {self.task} needs a target model artifact")
        if self.base_model is not None and self.target is None:
            raise ValueError("base_model is the base of an adapter target: give target too")
        if self.evaluation is not None and self.task == "causal-lm":
            raise ValueError("evaluation measures a classifier's accuracy: not for causal-lm")
        if self.reference_lm is not None and self.task != "causal-lm":
            raise ValueError("reference_lm is for task causal-lm only")
        if self.attacks is None:
            self.attacks = default_attacks(self)
        allowed = ATTACKS_BY_TASK[self.task]
        unknown = [a for a in self.attacks if a not in allowed or a not in ATTACKS]
        if unknown:
            raise ValueError(
                f"unknown attack(s) {unknown} for task {self.task}; known: {list(allowed)}"
            )
        if not self.attacks or len(set(self.attacks)) != len(self.attacks):
            raise ValueError("attacks must be a non-empty list without repeats")
        if self.uses_references and self.population is None:
            raise ValueError(
                f"attacks {[a for a in self.attacks if a in REFERENCE_ATTACKS]} need a "
                "population dataset (records from the same distribution as the training data)"
            )
        if "reference_ratio" in self.attacks and self.reference_lm is None:
            raise ValueError("attack reference_ratio needs a reference_lm artifact")
        if self.task == "causal-lm" and self.uses_references:
            self._check_lm_references()
        return self

    def _check_lm_references(self) -> None:
        """A causal LM's reference models are LoRA adapters the worker trains over the
        target's base model: the target must be an adapter, and nothing else is supported."""
        named = [a for a in self.attacks or () if a in REFERENCE_ATTACKS]
        if self.base_model is None:
            raise ValueError(
                f"attacks {named} on a causal LM train reference models as LoRA adapters over "
                "the target's base model: the target must be a PEFT/LoRA adapter and "
                "base_model must name its base model artifact"
            )
        references = self.reference_spec
        if references.uploaded:
            raise ValueError(
                "references.uploaded: uploaded reference models are for text-classification; "
                "causal-LM reference adapters are trained by the worker"
            )
        if references.base_model is not None:
            raise ValueError(
                "references.base_model: causal-LM reference adapters are trained over the "
                "audit's base_model; remove references.base_model"
            )
        if references.shards is not None and references.shards > 1:
            raise ValueError(
                "references.shards: causal-LM reference adapters share one base model and "
                "train in one task; remove shards (or set it to 1)"
            )

    @property
    def uses_references(self) -> bool:
        return any(a in REFERENCE_ATTACKS for a in self.attacks or ())

    @property
    def reference_spec(self) -> ReferenceSpec:
        return self.references or ReferenceSpec()


class StoredAuditSpec(AuditSpec):
    """The spec as stored with the audit and read by the worker: resolved at submission.

    The claim carries the server's accounting (the worker never runs an accountant), a split
    is resolved to its members and non-members artifacts, and `membership_source` says who
    drew membership: "service" (an audit split: a fair coin per record, the protocol the
    one-run bounds are proven for) or "pipeline" (files the pipeline chose).
    """

    members: str
    non_members: str
    # The input claim, resolved by the server's accountants (same fields plus outputs).
    dp_claim: DPClaim | None = None  # type: ignore[assignment]
    membership_source: MembershipSource = "pipeline"

    @model_validator(mode="after")
    def _membership(self) -> StoredAuditSpec:  # overrides AuditSpec's: both are set here
        if (self.split is not None) != (self.membership_source == "service"):
            raise ValueError("membership_source is service exactly when a split is named")
        return self


def default_attacks(spec: AuditSpec) -> list[str]:
    """Every cheap attack that fits the task, plus LiRA and RMIA when a population is given
    (for a causal LM, also `references` and an adapter target's base_model)."""
    if spec.task == "causal-lm":
        base = ["loss", "zlib", "min_k", "min_k_plus_plus"]
        base += ["reference_ratio"] if spec.reference_lm else []
        # Reference adapters cost a training run: only when asked for with `references`.
        if spec.references is not None and spec.base_model and spec.population is not None:
            base += ["lira-global", "rmia"]
        return base
    base = ["loss", "confidence"]
    if spec.task == "text-classification" and spec.population is not None:
        # Per-record variances need many models (Carlini et al. use a fixed one below 64);
        # with fewer, per-record LiRA ranks noise first (measured in tests/validation).
        many = spec.reference_spec.count >= 64 or len(spec.reference_spec.uploaded) >= 64
        base += ["lira" if many else "lira-global", "rmia"]
    return base


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
    claimed_epsilon: float | None = Field(
        description="declared, or computed from the DP-SGD parameters by the server's accountant"
    )
    split: str | None = Field(default=None, description="the audit split it was run on")
    membership_source: MembershipSource = Field(
        default="pipeline", description="who drew membership: service (a split) or pipeline"
    )
    auc: float | None
    epsilon_lower_bound: float | None
    gate: GateResult | None = Field(
        description="release gate by the audit's policy; None until the audit succeeds"
    )
    gate_reasons: list[GateReason] = Field(description="one outcome per rule of the policy")
    policy: PolicyRead | None = Field(description="the policy in force at submission")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]


class AuditPage(BaseModel):
    items: list[AuditRead]
    total: int
    limit: int
    offset: int
