"""The one versioned leakage-report schema, shared by the API, CLI, storage and dashboard."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from attacks.enums import VerdictStatus

REPORT_SCHEMA_VERSION = 3


class _Schema(BaseModel):
    """Base for report parts: unknown fields are an error, so schema drift is caught early."""

    model_config = ConfigDict(extra="forbid")


# More DP-SGD steps than any training run takes; bounds the accountants' work and keeps
# epochs / sample_rate a finite integer (1e308 epochs once overflowed math.ceil).
MAX_DPSGD_STEPS = 10**9


class DPSGDParameters(_Schema):
    """How a model was trained with DP-SGD; an accountant turns this into epsilon."""

    noise_multiplier: float = Field(gt=0, le=1e6)
    sample_rate: float = Field(gt=0, le=1)
    steps: int | None = Field(default=None, ge=1, le=MAX_DPSGD_STEPS)
    epochs: float | None = Field(default=None, gt=0, le=MAX_DPSGD_STEPS)
    accountant: Literal["rdp", "pld", "prv"] | None = Field(
        default=None,
        description="accountant whose epsilon is the claim; default: the tightest of them all",
    )

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> DPSGDParameters:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give either steps or epochs of DP-SGD training")
        if self.epochs is not None and self.epochs / self.sample_rate > MAX_DPSGD_STEPS:
            raise ValueError(
                f"epochs / sample_rate gives more than {MAX_DPSGD_STEPS} DP-SGD steps; "
                "check the epochs and the sample rate"
            )
        return self

    @property
    def n_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None
        return math.ceil(self.epochs / self.sample_rate)


class AccountedEpsilon(_Schema):
    """One accountant's epsilon for the claimed DP-SGD parameters (None if it failed)."""

    accountant: str
    epsilon: float | None = Field(ge=0)
    note: str = ""


class DPClaim(_Schema):
    """The (epsilon, delta) differential-privacy guarantee the model's owner claims, as reported.

    Either declared (`epsilon`) or computed by the server from DP-SGD parameters (`dp_sgd`):
    every accountant's epsilon is kept in `accountants`, and `accounted_epsilon` is the
    tightest one (or the one `dp_sgd.accountant` names). When both are given the declared
    epsilon is the one checked. `accounted_epsilon`, `accountant` and `accountants` are
    outputs: the audit spec's claim (app.audits.schemas.DPClaimSpec) refuses them, and
    `attacks.privacy.accounting.resolve_claim` fills them; this schema never runs an
    accountant, so reading a stored claim costs nothing and cannot change it.
    """

    epsilon: float | None = Field(default=None, gt=0)
    delta: float = Field(default=1e-5, ge=0, lt=1)
    dp_sgd: DPSGDParameters | None = None
    accounted_epsilon: float | None = Field(default=None, ge=0)
    accountant: str | None = Field(default=None, description="which accountant gave it")
    accountants: list[AccountedEpsilon] = Field(default_factory=list)
    max_record_occurrences: int = Field(default=1, ge=1, le=1000)

    @model_validator(mode="after")
    def _resolve_epsilon(self) -> DPClaim:
        if self.epsilon is None and self.accounted_epsilon is None:
            raise ValueError(
                "a DP claim needs epsilon, or dp_sgd parameters accounted for by the server "
                "(attacks.privacy.accounting.resolve_claim)"
            )
        if self.epsilon is None:
            self.epsilon = self.accounted_epsilon
        return self

    @property
    def epsilon_source(self) -> Literal["declared", "accountant"]:
        """Where the checked epsilon comes from: the owner's declaration or an accountant."""
        if self.dp_sgd is not None and self.accounted_epsilon == self.epsilon:
            return "accountant"
        return "declared"

    @property
    def epsilon_origin(self) -> str:
        """Where the checked epsilon comes from, in words for a verdict's explanation."""
        if self.epsilon_source == "accountant":
            text = f"computed by the server from the DP-SGD parameters ({self.accountant})"
            usable = [a for a in self.accountants if a.epsilon is not None]
            if len(usable) > 1:
                text += ", the tightest of " + ", ".join(
                    f"{a.accountant} {a.epsilon:.3g}" for a in usable
                )
            return text
        text = "declared by the model's owner"
        if self.accounted_epsilon is not None:
            text += (
                f" (the DP-SGD parameters give {self.accounted_epsilon:.3g} by {self.accountant})"
            )
        return text

    @property
    def claimed_epsilon(self) -> float:
        assert self.epsilon is not None
        return self.epsilon


class RocCurve(_Schema):
    """A (downsampled) ROC curve, member = positive class."""

    fpr: list[float]
    tpr: list[float]


# The "low FPR" every report gives a TPR at (0.1%), and that gates and dashboards read back.
LOW_FPR = 0.001


class TprAtFpr(_Schema):
    """TPR at one target FPR; `resolved` is False when too few non-members measure that FPR."""

    fpr: float
    tpr: float
    ci_low: float
    ci_high: float
    resolved: bool


class Interval(_Schema):
    """A confidence interval."""

    low: float
    high: float
    confidence: float = Field(gt=0, lt=1)


class AttackMetrics(_Schema):
    """How well one membership-inference attack separates members from non-members."""

    name: str
    n_members: int = Field(ge=0)
    n_non_members: int = Field(ge=0)
    auc: float
    auc_ci: Interval
    tpr_at_fpr: list[TprAtFpr]
    advantage: float
    min_measurable_fpr: float
    roc: RocCurve
    n_bootstrap: int = Field(ge=0)
    n_reference_models: int = Field(default=0, ge=0)


class EpsilonBound(_Schema):
    """One empirical lower bound on epsilon, with everything needed to judge and check it.

    Generic over methods: `method` names the statistic ("clopper-pearson", "gdp", "one-run",
    ...), `source` what produced the evidence (an attack's name, "canaries"), and `details`
    holds the method's own numbers (threshold, error counts, rate bounds, mu, ...).
    `confidence` is the family-wise level: the bound was computed at
    1 - (1 - confidence) / n_tests, so up to `n_tests` bounds may be compared at once.
    """

    method: str
    source: str
    value: float = Field(ge=0)
    confidence: float = Field(gt=0, lt=1)
    delta: float = Field(ge=0, lt=1)
    n_tests: int = Field(ge=1)
    n_eval_members: int = Field(ge=0, description="members (or included canaries) evaluated")
    n_eval_non_members: int = Field(ge=0, description="non-members (or excluded canaries)")
    threat_model: str
    description: str = ""
    details: dict[str, float | int | str | None] = Field(default_factory=dict)
    assumes: str = Field(default="", description="what the statistic needs to be valid")


class Verdict(_Schema):
    """Whether the measured leakage contradicts the claimed DP guarantee.

    `confidence` is family-wise over all `n_bounds` bounds compared; `gap` is the claimed
    epsilon minus the largest bound (negative exactly when the verdict is a violation).
    """

    status: VerdictStatus
    claimed_epsilon: float | None
    claimed_delta: float | None
    epsilon_lower_bound: float | None
    confidence: float | None
    explanation: str
    gap: float | None = None
    n_bounds: int = Field(default=0, ge=0)
    deciding_bound: str | None = Field(default=None, description="method and source of the max")
    max_record_occurrences: int = Field(default=1, ge=1)
    compared_epsilon: float | None = Field(
        default=None, description="the epsilon the bounds were compared with (group claim)"
    )
    compared_delta: float | None = None
    evidence: list[str] = Field(
        default_factory=list, description="the protocols behind the deciding bounds"
    )


class Utility(_Schema):
    """What the model is worth, next to what it leaks: accuracy with its exact interval.

    `accuracy` is measured on the evaluation dataset when the spec names one, else on the
    non-members; member accuracy shows the generalisation gap behind most leakage.
    """

    non_member_accuracy: float
    member_accuracy: float
    n_non_members: int = Field(ge=0)
    n_members: int = Field(ge=0)
    accuracy: float | None = None
    accuracy_ci: Interval | None = None
    n_evaluated: int | None = Field(default=None, ge=0)
    evaluated_on: Literal["non-members", "evaluation"] | None = None


class TargetInfo(_Schema):
    """What was audited."""

    task: str
    model_type: str | None = None
    num_labels: int | None = None
    n_parameters: int | None = None


class RecordAtRisk(_Schema):
    """A member the attack singles out; text only when the audit spec allows it."""

    rank: int = Field(ge=1)
    record_id: str
    sha256: str
    score: float
    flagged_at_fpr: float = Field(ge=0, le=1)
    attack: str
    label: str | None = None
    text: str | None = None


class ReferenceModels(_Schema):
    """How the reference models behind LiRA/RMIA were obtained, and what they cost."""

    count: int = Field(ge=0)
    source: Literal["trained", "uploaded"]
    mode: Literal["online", "offline"]
    n_population: int = Field(ge=0)
    training_seconds: float = Field(ge=0)
    scoring_seconds: float = Field(ge=0)
    trained_together: bool = False
    # Trained in this many shards (tasks); part of the seeds: a shard's references share one
    # vmapped run and its dropout draws.
    shards: int = Field(default=1, ge=1)


class OneRunEpsilon(_Schema):
    """The one-run epsilon lower bound (Steinke, Nasr & Jagielski, 2023) from canaries
    inserted at random: guesses on the highest- and lowest-scored canaries, how many right."""

    value: float = Field(ge=0)
    confidence: float = Field(gt=0, lt=1)
    delta: float = Field(ge=0, lt=1)
    k_pos: int = Field(ge=0)
    k_neg: int = Field(ge=0)
    n_guesses: int = Field(ge=0)
    n_correct: int = Field(ge=0)
    n_canaries: int = Field(ge=0)
    n_tests: int = Field(default=1, ge=1)
    method: str
    threat_model: str
    score: str = Field(description="the per-canary score the guesses ranked by")


class CanaryResult(_Schema):
    """One canary, inserted or held out. Secret and recovered text are masked unless the audit
    spec allowed text; `score` is what the one-run bound ranks canaries by."""

    id: str
    inserted: bool
    repetitions: int = Field(ge=1)
    label: str | None = None
    score: float
    exposure: float | None = None
    rank: float | None = Field(default=None, ge=1, description="of the true secret; 1 = top")
    extracted: bool | None = None
    recovered: str | None = None
    secret: str | None = None
    per_position_accuracy: float | None = Field(default=None, ge=0, le=1)
    inversion_rank: float | None = Field(
        default=None, ge=1, description="rank of the true secret under the inverted distribution"
    )


class CanarySummary(_Schema):
    """Inserted vs held-out canaries: exposure, extraction and the one-run bound."""

    canary_set: str
    kind: Literal["secret", "audit"]
    template: str | None = None
    n_inserted: int = Field(ge=0)
    n_held_out: int = Field(ge=0)
    mean_exposure_inserted: float | None = None
    mean_exposure_held_out: float | None = None
    n_extracted_inserted: int | None = None
    n_extracted_held_out: int | None = None
    mean_position_accuracy_inserted: float | None = None
    mean_position_accuracy_held_out: float | None = None
    chance_position_accuracy: float | None = None
    extraction_method: str | None = None
    candidate_space: int | None = None
    exposure_method: Literal["exact", "extrapolated"] | None = None
    one_run_bound: OneRunEpsilon | None = None


class CanaryReport(_Schema):
    summary: CanarySummary
    canaries: list[CanaryResult]


class DuplicateCount(_Schema):
    """How many records one data check removed, with a few ids to find them by."""

    count: int = Field(ge=0)
    example_ids: list[str] = Field(default_factory=list)


class DataChecks(_Schema):
    """Duplicates and member/non-member overlaps found before any statistic.

    A record occurring k times is protected only as a group of k; a text in both sets is
    both a member and a non-member. Bounds use the unique records left after these checks.
    """

    normalisation: str
    n_members_given: int = Field(ge=0)
    n_non_members_given: int = Field(ge=0)
    n_members: int = Field(ge=0, description="unique members used by the statistics")
    n_non_members: int = Field(ge=0)
    duplicate_members: DuplicateCount
    duplicate_non_members: DuplicateCount
    in_both: DuplicateCount = Field(description="records whose text is in both sets")
    n_single_copy: int = Field(
        default=0,
        ge=0,
        description="unique records occurring once in their file: one-run candidates",
    )


class BlindBaseline(_Schema):
    """A model-free attack: can the records alone tell members from non-members?

    When they can (the AUC interval lies above 0.5, confirmed by a permutation test), members
    and non-members were not drawn from one distribution, and black-box bounds on them
    measure the data, not the model.
    """

    status: Literal["separable", "not-separable", "skipped"]
    auc: float | None = None
    auc_ci: Interval | None = None
    n_members: int = Field(default=0, ge=0)
    n_non_members: int = Field(default=0, ge=0)
    p_value: float | None = Field(
        default=None, description="permutation test, run when the AUC interval lies above 0.5"
    )
    features: str = ""
    note: str = ""


class ScoreHistogram(_Schema):
    """How one attack's scores spread over members and non-members: counts in fixed bins.

    `edges` has one more entry than each count list; the first and last bins also count the
    scores beyond them (the range is cut at quantiles so one outlier cannot flatten the rest).
    Counts only: no score or record can be read back from it.
    """

    attack: str
    edges: list[float]
    members: list[int]
    non_members: list[int]
    clipped: bool = Field(
        default=False, description="whether the end bins hold scores beyond the edges"
    )


class SliceMetrics(_Schema):
    """One attack on one slice of the records: a true class, or correct/incorrect predictions.

    TF Privacy's slicing: an attack can be weak overall and strong on one class (the most
    vulnerable one). Metrics are None when the slice has too few members or non-members.
    """

    feature: Literal["class", "correctness"]
    value: str = Field(description="the class label, or 'correct' / 'incorrect'")
    attack: str
    n_members: int = Field(ge=0)
    n_non_members: int = Field(ge=0)
    auc: float | None = None
    auc_ci: Interval | None = Field(
        default=None, description="Hanley-McNeil normal interval (no bootstrap per slice)"
    )
    tpr_at_1pct_fpr: float | None = None
    tpr_resolved: bool = Field(
        default=False, description="at least 100 non-members, so 1% FPR is measurable"
    )


class Slices(_Schema):
    """Every slice's metrics, and the class the attacks single out most."""

    min_records: int = Field(ge=1, description="members and non-members a slice needs")
    results: list[SliceMetrics]
    most_vulnerable_class: str | None = Field(
        default=None, description="the class slice with the highest AUC over all attacks"
    )
    most_vulnerable_attack: str | None = None
    n_classes: int = Field(default=0, ge=0, description="classes found, sliced or not")
    n_classes_sliced: int = Field(default=0, ge=0)


class LeakageReport(_Schema):
    """The full result of one audit.

    Fields added after schema version 3 was first written (`score_histograms`, `slices`)
    are optional, so a stored version-3 report without them still reads.
    """

    schema_version: int = REPORT_SCHEMA_VERSION
    target: TargetInfo
    attacks: list[AttackMetrics]
    epsilon_lower_bound: EpsilonBound | None = Field(description="the largest of the bounds")
    epsilon_bounds: list[EpsilonBound] = Field(
        description="the one-run bounds that may decide the verdict, one Bonferroni family"
    )
    epsilon_estimates: list[EpsilonBound] = Field(
        default_factory=list,
        description="bounds that assume more than one training run gives (Clopper-Pearson, "
        "Gaussian-DP over records); their own Bonferroni family; never decide",
    )
    verdict: Verdict
    dp_claim: DPClaim | None = None
    utility: Utility | None
    device: str
    timings: dict[str, float]
    library_versions: dict[str, str]
    created_at: datetime
    reference_models: ReferenceModels | None = None
    records_at_risk: list[RecordAtRisk] = Field(default_factory=list)
    canaries: CanaryReport | None = None
    membership_source: Literal["service", "pipeline"] | None = None
    data_checks: DataChecks | None = None
    blind_baseline: BlindBaseline | None = None
    score_histograms: list[ScoreHistogram] = Field(
        default_factory=list, description="per attack, members vs non-members"
    )
    slices: Slices | None = Field(
        default=None, description="metrics by true class and by correct/incorrect prediction"
    )


def best_epsilon_bound(bounds: list[EpsilonBound]) -> EpsilonBound | None:
    """The largest bound; valid only because each was corrected for the whole family.

    Refuses a family whose members were corrected for fewer tests than it holds, or that
    mixes confidence levels or deltas: their maximum would not be a bound at that level.
    """
    if not bounds:
        return None
    for bound in bounds:
        if bound.n_tests < len(bounds):
            raise ValueError(
                f"the {bound.method} bound from {bound.source!r} was corrected for "
                f"{bound.n_tests} test(s) but {len(bounds)} bounds are compared: recompute "
                f"it with n_tests={len(bounds)}"
            )
    if len({(bound.confidence, bound.delta) for bound in bounds}) > 1:
        raise ValueError(
            "bounds computed at different confidence levels or deltas cannot be compared"
        )
    return max(bounds, key=lambda bound: bound.value)
