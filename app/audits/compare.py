"""What changed between two audits (usually two versions of one model): verdict, gate, each
attack's AUC and TPR, the epsilon bound, utility and canaries, with a sentence per change.

Both audits must be the tenant's (else NotFound) and succeeded (else Conflict), so a
comparison is always between two finished reports; `b` is read against `a` (delta = b - a).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from app.audits import service
from app.audits.enums import AuditState
from app.audits.models import Audit
from app.audits.schemas import GateResult, ModelRef
from app.core.errors import Conflict
from app.reporting.common import canary_gap
from app.tenants.models import Tenant
from attacks.report import AttackMetrics, LeakageReport

# Changes smaller than these are noise in the sentences (the numbers are all still given).
AUC_STEP = 0.01
RATE_STEP = 0.005
EPSILON_STEP = 0.01


class ValueDelta(BaseModel):
    """One number in both audits and its change (None where either lacks it)."""

    a: float | None
    b: float | None
    delta: float | None = Field(description="b - a")


def _delta(a: float | None, b: float | None) -> ValueDelta:
    return ValueDelta(a=a, b=b, delta=None if a is None or b is None else b - a)


class AttackDelta(BaseModel):
    """One attack in both audits; TPR values are None where too few non-members resolve them."""

    attack: str
    auc: ValueDelta
    tpr_at_1pct_fpr: ValueDelta
    tpr_at_0_1pct_fpr: ValueDelta


class ComparedAudit(BaseModel):
    """One side of the comparison."""

    id: str
    model: ModelRef
    verdict: str | None
    gate: GateResult | None
    created_at: datetime
    dashboard: str


class AuditComparison(BaseModel):
    """Audit `b` against audit `a`."""

    a: ComparedAudit
    b: ComparedAudit
    same_model: bool = Field(description="both audits name the same model")
    verdict_changed: bool
    gate_changed: bool
    attacks: list[AttackDelta] = Field(description="attacks run in both audits")
    attacks_only_in_a: list[str]
    attacks_only_in_b: list[str]
    epsilon_lower_bound: ValueDelta
    claimed_epsilon: ValueDelta
    accuracy: ValueDelta = Field(
        description="accuracy on the evaluation set, else on the non-members"
    )
    member_accuracy: ValueDelta
    canary_exposure_gap: ValueDelta = Field(description="bits; None without exposure")
    changes: list[str] = Field(description="what changed, one plain sentence each")


def _tpr(attack: AttackMetrics, fpr: float) -> float | None:
    point = next((p for p in attack.tpr_at_fpr if abs(p.fpr - fpr) < 1e-12), None)
    return point.tpr if point is not None and point.resolved else None


def _accuracy(report: LeakageReport) -> float | None:
    utility = report.utility
    if utility is None:
        return None
    return utility.accuracy if utility.accuracy is not None else utility.non_member_accuracy


def _side(audit: Audit) -> ComparedAudit:
    read = service.to_read(audit)
    return ComparedAudit(
        id=read.id,
        model=read.model,
        verdict=read.verdict,
        gate=read.gate,
        created_at=read.created_at,
        dashboard=read.links["dashboard"],
    )


def _report(db_session: Session, audit: Audit) -> LeakageReport:
    if audit.state != AuditState.SUCCEEDED:
        raise Conflict(
            f"audit {audit.id} is {audit.state}: only succeeded audits can be compared",
            title="Not comparable",
        )
    stored = service.require_report(db_session=db_session, audit=audit)
    try:
        return LeakageReport.model_validate(stored.body)
    except ValidationError as exc:
        raise Conflict(
            f"the stored report of audit {audit.id} (schema version {stored.schema_version}) "
            "cannot be read by this server; download its JSON instead",
            title="Not comparable",
        ) from exc


def _moved(name: str, change: ValueDelta, step: float, fmt: str, worse_up: bool) -> str | None:
    """A sentence for a change of at least `step`; `worse_up`: a rise means more leakage."""
    if change.delta is None or abs(change.delta) < step:
        return None
    assert change.a is not None and change.b is not None
    verb = "rose" if change.delta > 0 else "fell"
    worse = (change.delta > 0) == worse_up
    return (
        f"{name} {verb} from {format(change.a, fmt)} to {format(change.b, fmt)} "
        f"({'worse' if worse else 'better'})."
    )


def compare_reports(
    a: ComparedAudit, b: ComparedAudit, report_a: LeakageReport, report_b: LeakageReport
) -> AuditComparison:
    """The comparison of two read reports (pure: the route and the dashboard call it)."""
    attacks_a = {attack.name: attack for attack in report_a.attacks}
    attacks_b = {attack.name: attack for attack in report_b.attacks}
    shared = [name for name in attacks_a if name in attacks_b]
    deltas = [
        AttackDelta(
            attack=name,
            auc=_delta(attacks_a[name].auc, attacks_b[name].auc),
            tpr_at_1pct_fpr=_delta(_tpr(attacks_a[name], 0.01), _tpr(attacks_b[name], 0.01)),
            tpr_at_0_1pct_fpr=_delta(_tpr(attacks_a[name], 0.001), _tpr(attacks_b[name], 0.001)),
        )
        for name in shared
    ]
    bound_a, bound_b = report_a.epsilon_lower_bound, report_b.epsilon_lower_bound
    epsilon = _delta(bound_a.value if bound_a else None, bound_b.value if bound_b else None)
    accuracy = _delta(_accuracy(report_a), _accuracy(report_b))
    member_accuracy = _delta(
        report_a.utility.member_accuracy if report_a.utility else None,
        report_b.utility.member_accuracy if report_b.utility else None,
    )
    gap = _delta(canary_gap(report_a), canary_gap(report_b))
    changes = []
    if a.verdict != b.verdict:
        changes.append(f"The verdict changed from {a.verdict} to {b.verdict}.")
    if a.gate != b.gate:
        changes.append(f"The release gate changed from {a.gate or 'none'} to {b.gate or 'none'}.")
    for delta in deltas:
        changes += [
            line
            for line in (
                _moved(f"AUC of {delta.attack}", delta.auc, AUC_STEP, ".3f", True),
                _moved(
                    f"TPR at 1% FPR of {delta.attack}",
                    delta.tpr_at_1pct_fpr,
                    RATE_STEP,
                    ".1%",
                    True,
                ),
            )
            if line
        ]
    changes += [
        line
        for line in (
            _moved("The epsilon lower bound", epsilon, EPSILON_STEP, ".3g", True),
            _moved("Accuracy", accuracy, RATE_STEP, ".1%", False),
            _moved("The canary exposure gap (bits)", gap, 0.5, ".2f", True),
        )
        if line
    ]
    if not changes:
        changes.append("Nothing changed beyond noise: same verdict, gate and numbers.")
    return AuditComparison(
        a=a,
        b=b,
        same_model=a.model.name == b.model.name,
        verdict_changed=a.verdict != b.verdict,
        gate_changed=a.gate != b.gate,
        attacks=deltas,
        attacks_only_in_a=[name for name in attacks_a if name not in attacks_b],
        attacks_only_in_b=[name for name in attacks_b if name not in attacks_a],
        epsilon_lower_bound=epsilon,
        claimed_epsilon=_delta(report_a.verdict.claimed_epsilon, report_b.verdict.claimed_epsilon),
        accuracy=accuracy,
        member_accuracy=member_accuracy,
        canary_exposure_gap=gap,
        changes=changes,
    )


def compare(
    *, db_session: Session, tenant: Tenant, audit_id: str, other_id: str
) -> AuditComparison:
    """Audit `other_id` against `audit_id`; NotFound unless both are the tenant's, Conflict
    unless both succeeded."""
    first = service.get_or_404(db_session=db_session, tenant=tenant, audit_id=audit_id)
    second = service.get_or_404(db_session=db_session, tenant=tenant, audit_id=other_id)
    return compare_reports(
        _side(first), _side(second), _report(db_session, first), _report(db_session, second)
    )
