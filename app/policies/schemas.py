"""Policy rules, what the API returns about policies, and the gate's per-rule outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.policies.enums import GateResult, RuleStatus

RuleName = Literal[
    "verdict_not_violation",
    "no_inserted_canary_extracted",
    "max_auc",
    "max_tpr_at_0_1pct_fpr",
    "max_epsilon_lower_bound",
    "max_canary_exposure_gap",
]


class PolicyRules(BaseModel):
    """What a release must satisfy. Limits left empty are not checked.

    The defaults are also the built-in policy of a tenant that set none: the DP verdict must not
    be `violation`, and no canary that was inserted into training may be extracted.
    """

    model_config = ConfigDict(extra="forbid")

    verdict_not_violation: bool = Field(
        default=True, description="fail when the measured leakage contradicts the DP claim"
    )
    inconclusive: GateResult = Field(
        default=GateResult.FAIL,
        description="with verdict_not_violation: what an `inconclusive` verdict (the data "
        "cannot support a verdict) does to the gate; fail closes the gate (the default)",
    )
    no_inserted_canary_extracted: bool = Field(
        default=True, description="fail when an inserted canary's secret was extracted"
    )
    max_auc: float | None = Field(
        default=None, ge=0, le=1, description="highest AUC of any attack (point estimate)"
    )
    max_tpr_at_0_1pct_fpr: float | None = Field(
        default=None, ge=0, le=1, description="highest TPR at 0.1% FPR of any attack"
    )
    max_epsilon_lower_bound: float | None = Field(
        default=None, ge=0, description="highest empirical epsilon lower bound"
    )
    max_canary_exposure_gap: float | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="highest mean exposure of inserted canaries minus held-out ones, in bits "
        "(each bit: the trained secrets ranked twice as high as unseen ones)",
    )


PolicyScope = Literal["default", "model", "built-in"]


class PolicyRead(BaseModel):
    """A stored policy, or the built-in one; also the snapshot copied into each audit."""

    scope: PolicyScope
    model_name: str | None
    rules: PolicyRules
    updated_at: datetime | None


class GateReason(BaseModel):
    """One rule's outcome: what was measured (with its interval where there is one), the limit."""

    rule: RuleName
    status: RuleStatus
    measured: float | str | None = Field(description="the value compared with the limit")
    interval: tuple[float, float | None] | None = Field(
        default=None, description="confidence interval of `measured` (high None: one-sided)"
    )
    confidence: float | None = None
    limit: float | str | None
    attack: str | None = Field(default=None, description="the attack the value comes from")
    message: str
