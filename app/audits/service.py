"""Submit, read, list and cancel audits. Specs are checked against stored artifacts first."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.artifacts import service as artifact_service
from app.artifacts.adapters import check_adapter_fits
from app.artifacts.errors import ArtifactRejected
from app.artifacts.models import Artifact
from app.artifacts.storage import Storage
from app.audits.enums import AuditState
from app.audits.models import FINAL_STATES, Audit, Report
from app.audits.queue import enqueue
from app.audits.schemas import AuditRead, AuditSpec, ModelRef, StoredAuditSpec
from app.audits.vocabulary import load_encoder
from app.core.config import get_settings
from app.core.errors import Conflict, Rejected, found
from app.core.timeutil import utcnow
from app.policies import service as policy_service
from app.policies.schemas import GateReason, PolicyRead
from app.tenants.models import Tenant
from app.webhooks.queue import enqueue_delivery
from app.webhooks.urls import CallbackRefused, check_callback_url
from attacks.canaries.tokens import CanaryTokenError, canary_ids, secret_slots
from attacks.privacy.accounting import ClaimRejected, resolve_claim

log = logging.getLogger(__name__)


class SpecRejected(Rejected):
    """The spec is well-formed but refers to something unusable (HTTP 422)."""


def _artifact(
    db_session: Session, tenant: Tenant, field: str, artifact_id: str, kind: str
) -> Artifact:
    artifact = artifact_service.get(db_session=db_session, tenant=tenant, artifact_id=artifact_id)
    if artifact is None:
        raise SpecRejected(
            f"{field}: no artifact {artifact_id!r} (upload it with POST /v1/artifacts)"
        )
    if artifact.kind != kind:
        raise SpecRejected(f"{field}: artifact {artifact_id!r} is a {artifact.kind}, not a {kind}")
    return artifact


CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def _check_architecture(field: str, model: Artifact, task: str) -> None:
    if model.meta.get("adapter"):
        raise SpecRejected(
            f"{field}: artifact {model.id!r} is a PEFT adapter; only the target may be one "
            "(with base_model naming its base), or merge it into its base and upload that"
        )
    architectures = model.meta.get("architectures") or []
    suffixes = (
        ("ForSequenceClassification",) if task == "text-classification" else CAUSAL_LM_SUFFIXES
    )
    if not any(a.endswith(suffixes) for a in architectures):
        wanted = " or ".join(f"*{x}" for x in suffixes)
        raise SpecRejected(
            f"{field}: task {task} needs a {wanted} model; config.json names "
            f"{architectures or 'no architecture'}"
        )


def _check_adapter(
    db_session: Session, tenant: Tenant, spec: AuditSpec, adapter: Artifact
) -> Artifact:
    """An adapter target: its base named, a full model, of the adapter's task, and the one the
    adapter was trained on (target modules in the base, LoRA shapes fitting its weights)."""
    if spec.base_model is None:
        raise SpecRejected(
            f"target: artifact {adapter.id!r} is a PEFT adapter; name the model it adapts in "
            "base_model (upload the base model folder as a model artifact)"
        )
    base = _artifact(db_session, tenant, "base_model", spec.base_model, "model")
    adapter_task = adapter.meta.get("task")
    if adapter_task is not None and adapter_task != spec.task:
        raise SpecRejected(
            f"target: the adapter's task_type is {adapter.meta.get('task_type')} "
            f"({adapter_task}); the audit is {spec.task}"
        )
    try:
        check_adapter_fits(_model_folder(adapter), _model_folder(base))
    except ArtifactRejected as exc:
        raise SpecRejected(f"base_model: {exc}") from exc
    return base


def _check_dataset(field: str, dataset: Artifact, spec: AuditSpec, target: Artifact | None) -> None:
    meta = dataset.meta
    if spec.task in ("text-classification", "predictions") and meta.get("missing_labels"):
        raise SpecRejected(
            f"{field}: {meta['missing_labels']} record(s) have no label; task {spec.task} needs one"
        )
    if spec.task == "predictions":
        if not meta.get("outputs_kind"):
            raise SpecRejected(
                f"{field}: task predictions needs each record's model outputs "
                '("probs" or "logits" arrays, JSONL)'
            )
        width = int(meta["n_outputs"])
        bad = [lab for lab in meta.get("labels") or [] if not _is_index(lab, width)]
        if bad:
            raise SpecRejected(
                f"{field}: labels {bad[:5]} are not class indices 0..{width - 1} of the outputs"
            )
        return
    if not meta.get("has_text", True):
        raise SpecRejected(f"{field}: task {spec.task} needs a text for every record")
    if spec.task == "text-classification" and target is not None:
        known = set(target.meta.get("labels") or [])
        num_labels = int(target.meta.get("num_labels") or 0)
        unknown = [
            lab
            for lab in meta.get("labels") or []
            if lab not in known and not _is_index(lab, num_labels)
        ]
        if unknown:
            raise SpecRejected(
                f"{field}: labels {unknown[:5]} are not classes of the model "
                f"(its labels: {sorted(known)[:20]})"
            )


def _is_index(label: str, width: int) -> bool:
    """A label written as a class number: ASCII digits only ("²" is a digit to str.isdigit),
    and short enough that int() stays cheap (no class count has 19 digits)."""
    return label.isascii() and label.isdigit() and len(label) <= 18 and int(label) < width


def _check_distinct(members: Artifact, non_members: Artifact, side: str) -> None:
    """Members and non-members from one file: the data checks drop every record found in
    both sets, so the worker would be left with nothing to audit."""
    if members.id == non_members.id:
        raise SpecRejected(
            f"members and non_members{side} are the same artifact {members.id!r}; the "
            "non-members must be records the model did not train on"
        )
    if members.sha256 == non_members.sha256:
        raise SpecRejected(
            f"members ({members.id}) and non_members ({non_members.id}){side} have identical "
            f"content (sha256 {members.sha256[:12]}...); the non-members must be records the "
            "model did not train on"
        )


MIN_REFERENCE_POOL = 2
"""Reference models train on random halves of their pool (attacks.reference.masks): a pool of
one record cannot be halved, and every reference model needs a training record."""


def _check_record_counts(spec: AuditSpec, datasets: dict[str, Artifact]) -> None:
    """Record counts the attacks asked need; a dataset always holds one record (upload)."""
    if not spec.uses_references:
        return
    references = spec.reference_spec
    if references.uploaded or references.mode != "offline":
        return  # online: the pool is every audited and population record, at least three
    population = datasets["population"]
    n = int(population.meta.get("n_records") or 0)
    if n < MIN_REFERENCE_POOL:
        raise SpecRejected(
            f"population: offline reference models train on halves of the population, which "
            f"needs at least {MIN_REFERENCE_POOL} records; {population.id} has {n}"
        )


def _check_same_classes(field: str, reference: Artifact, target: Artifact) -> None:
    """An uploaded reference model's logits are compared class by class with the target's."""
    ours, theirs = target.meta.get("num_labels"), reference.meta.get("num_labels")
    if ours is not None and theirs is not None and int(ours) != int(theirs):
        raise SpecRejected(
            f"{field}: the reference model has {theirs} classes, the target {ours}; reference "
            "models must be trained for the target's classes"
        )
    labels, known = reference.meta.get("labels"), target.meta.get("labels")
    if labels and known and labels != known:
        raise SpecRejected(
            f"{field}: the reference model's classes {labels[:10]} are not the target's "
            f"{known[:10]} (in the same order)"
        )


class AlreadyEnded(Conflict):
    """Cancelling an audit that has already ended (HTTP 409)."""


def check_spec(*, db_session: Session, tenant: Tenant, spec: StoredAuditSpec) -> None:
    """Everything that can fail before a worker touches the audit fails here, with a reason."""
    target = tokenizer_source = None
    if spec.target is not None:
        target = tokenizer_source = _artifact(db_session, tenant, "target", spec.target, "model")
        if target.meta.get("adapter"):
            base = _check_adapter(db_session, tenant, spec, target)
            tokenizer_source = target if target.meta.get("has_tokenizer") else base
            target = base  # the merged model has the base's architecture and classes
        elif spec.base_model is not None:
            raise SpecRejected(
                f"base_model: the target {spec.target!r} is a full model, not a PEFT adapter; "
                "remove base_model"
            )
        _check_architecture("target", target, spec.task)
    side = f" (of split {spec.split})" if spec.split is not None else ""
    datasets = {f"members{side}": spec.members, f"non_members{side}": spec.non_members}
    if spec.population is not None:
        datasets["population"] = spec.population
    if spec.evaluation is not None:
        datasets["evaluation"] = spec.evaluation
    widths: set[Any] = set()
    found: dict[str, Artifact] = {}
    for field, artifact_id in datasets.items():
        dataset = _artifact(db_session, tenant, field, artifact_id, "dataset")
        _check_dataset(field, dataset, spec, target)
        widths.add(dataset.meta.get("n_outputs"))
        found[field.split(" ")[0]] = dataset
    if spec.task == "predictions" and len(widths) > 1:
        raise SpecRejected(f"the datasets' outputs have different widths: {sorted(widths)}")
    _check_distinct(found["members"], found["non_members"], side)
    _check_record_counts(spec, found)
    if spec.reference_lm is not None:
        reference = _artifact(db_session, tenant, "reference_lm", spec.reference_lm, "model")
        _check_architecture("reference_lm", reference, "causal-lm")
    if spec.canary_set is not None:
        _check_canary_set(db_session, tenant, spec, target, tokenizer_source)
    if spec.references is not None and spec.uses_references:
        if spec.references.base_model is not None:
            base = _artifact(
                db_session, tenant, "references.base_model", spec.references.base_model, "model"
            )
            _check_architecture("references.base_model", base, spec.task)
        for i, uploaded in enumerate(spec.references.uploaded):
            field = f"references.uploaded[{i}].model"
            reference = _artifact(db_session, tenant, field, uploaded.model, "model")
            _check_architecture(field, reference, spec.task)
            if target is not None:
                _check_same_classes(field, reference, target)
    if spec.callback_url is not None:
        if not tenant.webhook_secret:
            raise SpecRejected(
                "callback_url needs a webhook secret to sign with: create one with "
                "POST /v1/webhook-secret first"
            )
        try:
            check_callback_url(
                str(spec.callback_url), allow_private=get_settings().webhook_allow_private
            )
        except CallbackRefused as exc:
            raise SpecRejected(str(exc)) from exc


def _check_canary_set(
    db_session: Session,
    tenant: Tenant,
    spec: AuditSpec,
    target: Artifact | None,
    tokenizer_source: Artifact | None,
) -> None:
    from app.canaries import service as canary_service

    assert spec.canary_set is not None
    row = canary_service.get(db_session=db_session, tenant=tenant, canary_set_id=spec.canary_set)
    if row is None:
        raise SpecRejected(
            f"canary_set: no canary set {spec.canary_set!r} (create one with POST /v1/canary-sets)"
        )
    if row.task != spec.task:
        raise SpecRejected(
            f"canary_set: its canaries are for task {row.task}, the audit is {spec.task}"
        )
    if spec.task == "text-classification" and target is not None:
        known = set(target.meta.get("labels") or [])
        num_labels = int(target.meta.get("num_labels") or 0)
        unknown = [
            lab for lab in row.labels or [] if lab not in known and not _is_index(lab, num_labels)
        ]
        if unknown:
            raise SpecRejected(
                f"canary_set: labels {unknown[:5]} are not classes of the model "
                f"(its labels: {sorted(known)[:20]})"
            )
    if tokenizer_source is not None and row.kind == "secret":
        _check_canary_tokens(row, tokenizer_source)


def _check_canary_tokens(row: Any, target: Artifact) -> None:
    """The worker's own check (attacks.canaries.tokens) on the stored model's tokenizer: every
    alphabet character a distinct known token, every canary tokenised like its template."""
    from app.canaries import service as canary_service

    template = canary_service.template_of(row)
    if template is None:
        return
    loaded = load_encoder(_model_folder(target))
    if loaded is None:
        return
    encode, unknown_id = loaded
    try:
        slots = secret_slots(encode, template, unknown_id)
        for canary in canary_service.canaries_of(row):
            canary_ids(encode, template, slots, canary.id, canary.secret)
    except CanaryTokenError as exc:
        raise SpecRejected(
            f"canary_set: {exc} (the target's tokenizer.json); choose an alphabet of tokens "
            "the model knows, or plant the canaries with a tokenizer that has them"
        ) from exc


def _model_folder(model: Artifact) -> Path:
    """The stored model's unpacked folder (cached since upload; unpacked again if collected)."""
    settings = get_settings()
    assert settings.storage_dir is not None
    return Storage(settings.storage_dir).unpack_model(
        model.sha256,
        max_entries=settings.max_archive_entries,
        max_unpacked_bytes=settings.max_archive_unpacked_bytes,
        max_file_bytes=settings.max_archive_file_bytes,
        reserve_bytes=settings.storage_reserve_bytes,
    )


def _resolve_split(db_session: Session, tenant: Tenant, spec: AuditSpec) -> dict[str, str]:
    """Members and non-members: the files the pipeline named, or exactly the split's halves."""
    if spec.split is None:
        assert spec.members is not None and spec.non_members is not None
        return {
            "members": spec.members,
            "non_members": spec.non_members,
            "membership_source": "pipeline",
        }
    from app.splits import service as split_service

    row = split_service.get(db_session=db_session, tenant=tenant, split_id=spec.split)
    if row is None:
        raise SpecRejected(
            f"split: no audit split {spec.split!r} (create one with POST /v1/audit-splits)"
        )
    return {
        "members": row.members_id,
        "non_members": row.non_members_id,
        "membership_source": "service",
    }


def resolve_spec(*, db_session: Session, tenant: Tenant, spec: AuditSpec) -> StoredAuditSpec:
    """The spec the worker will run: checked against stored artifacts, the split resolved to
    its members and non-members, the DP claim accounted for by the server (cached), so the
    worker never accounts and never trusts a client's epsilon as an accountant's."""
    data = spec.model_dump(mode="json", exclude={"dp_claim"})
    data.update(_resolve_split(db_session, tenant, spec))
    stored = StoredAuditSpec.model_validate(data)
    check_spec(db_session=db_session, tenant=tenant, spec=stored)
    if spec.dp_claim is None:
        return stored
    claim = spec.dp_claim
    try:
        resolved = resolve_claim(
            epsilon=claim.epsilon,
            delta=claim.delta,
            dp_sgd=claim.dp_sgd,
            max_record_occurrences=claim.max_record_occurrences,
        )
    except ClaimRejected as exc:
        raise SpecRejected(str(exc)) from exc
    return stored.model_copy(update={"dp_claim": resolved})


def submit(*, db_session: Session, tenant: Tenant, spec: AuditSpec) -> Audit:
    """Commit the audit row, then send the task; a failed send is retried by the sweeper."""
    stored = resolve_spec(db_session=db_session, tenant=tenant, spec=spec)
    policy = policy_service.applicable(
        db_session=db_session, tenant=tenant, model_name=spec.model.name
    )
    audit = Audit(
        tenant_id=tenant.id,
        model_name=spec.model.name,
        model_version=spec.model.version,
        task=spec.task,
        spec=stored.model_dump(mode="json"),
        policy=policy.model_dump(mode="json"),
        state=AuditState.QUEUED,
        stage="waiting for a worker",
    )
    db_session.add(audit)
    db_session.commit()
    try:
        enqueue(audit.id)
    except Exception:  # the broker may be down; the audit is safe in the database
        log.warning(
            "could not enqueue audit %s now; the sweeper will retry", audit.id, exc_info=True
        )
    else:
        audit.enqueued_at = utcnow()
        db_session.commit()
    return audit


def get(*, db_session: Session, tenant: Tenant, audit_id: str) -> Audit | None:
    return db_session.scalar(
        select(Audit).where(Audit.id == audit_id, Audit.tenant_id == tenant.id)
    )


def get_or_404(*, db_session: Session, tenant: Tenant, audit_id: str) -> Audit:
    """The tenant's audit, or NotFound (another tenant's audit looks missing)."""
    return found(get(db_session=db_session, tenant=tenant, audit_id=audit_id), "audit", audit_id)


# Orders a list can be sorted in; the id breaks ties so that pages never overlap.
SORTS = {
    "newest": (Audit.created_at.desc(),),
    "oldest": (Audit.created_at.asc(),),
    "auc": (Audit.auc.desc().nulls_last(), Audit.created_at.desc()),
    "epsilon": (Audit.epsilon_lower_bound.desc().nulls_last(), Audit.created_at.desc()),
    "model": (Audit.model_name.asc(), Audit.model_version.asc(), Audit.created_at.desc()),
}


def get_all(
    *,
    db_session: Session,
    tenant: Tenant,
    model_name: str | None = None,
    state: str | None = None,
    verdict: str | None = None,
    gate: str | None = None,
    sort: str = "newest",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Audit], int]:
    """One page of the tenant's audits in the order `sort` names (a key of SORTS)."""
    query = select(Audit).where(Audit.tenant_id == tenant.id)
    if model_name:
        query = query.where(Audit.model_name == model_name)
    if state:
        query = query.where(Audit.state == state)
    if verdict:
        query = query.where(Audit.verdict == verdict)
    if gate:
        query = query.where(Audit.gate == gate)
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db_session.scalars(query.order_by(*SORTS[sort], Audit.id).limit(limit).offset(offset))
    return list(items), total


def get_many(*, db_session: Session, tenant: Tenant, audit_ids: list[str]) -> list[Audit]:
    """The tenant's audits among `audit_ids`; ids of other tenants' audits are left out."""
    if not audit_ids:
        return []
    return list(
        db_session.scalars(
            select(Audit).where(Audit.tenant_id == tenant.id, Audit.id.in_(set(audit_ids)))
        )
    )


def cancel(*, db_session: Session, audit: Audit) -> Audit:
    """A queued audit ends now; a running one is flagged and its worker stops between steps."""
    if audit.state in FINAL_STATES:
        raise AlreadyEnded(f"audit {audit.id} has already ended ({audit.state})")
    if audit.state == AuditState.QUEUED:
        audit.state = AuditState.CANCELLED
        audit.stage = "cancelled before a worker started it"
        audit.finished_at = utcnow()
    audit.cancel_requested = True
    db_session.commit()
    if audit.state == AuditState.CANCELLED:
        enqueue_delivery(audit)
    return audit


def get_report(*, db_session: Session, audit: Audit) -> Report | None:
    return db_session.get(Report, audit.id)


def require_report(*, db_session: Session, audit: Audit) -> Report:
    """The audit's stored report, or Conflict: there is none until the audit succeeds."""
    report = get_report(db_session=db_session, audit=audit)
    if report is None:
        raise Conflict(
            f"audit {audit.id} has no report: it is {audit.state}"
            + (f" ({audit.error})" if audit.error else "")
            + ("; poll the audit until it succeeds" if audit.state not in FINAL_STATES else ""),
            title="No report yet",
        )
    return report


def report_bodies(*, db_session: Session, audit_ids: list[str]) -> dict[str, dict]:
    """Stored report bodies of several audits in one query (callers checked the tenant)."""
    if not audit_ids:
        return {}
    rows = db_session.execute(
        select(Report.audit_id, Report.body).where(Report.audit_id.in_(audit_ids))
    )
    return {audit_id: body for audit_id, body in rows}


RECORD_COLUMNS = (
    "rank",
    "record_id",
    "sha256",
    "score",
    "flagged_at_fpr",
    "attack",
    "label",
    "text",
)


# A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text: record texts and labels come from uploads, so one
    starting like a formula gets a leading apostrophe (numbers stay numbers)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def records_csv(report_body: dict) -> str:
    """Records at risk from a stored report, one CSV row each; text stays empty unless allowed."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RECORD_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in report_body.get("records_at_risk", []):
        writer.writerow({k: csv_cell(row.get(k)) for k in RECORD_COLUMNS})
    return out.getvalue()


def to_read(audit: Audit) -> AuditRead:
    return AuditRead(
        id=audit.id,
        model=ModelRef(name=audit.model_name, version=audit.model_version),
        task=audit.task,
        state=audit.state,
        progress=audit.progress,
        stage=audit.stage,
        error=audit.error,
        cancel_requested=audit.cancel_requested,
        verdict=audit.verdict,
        claimed_epsilon=(audit.spec.get("dp_claim") or {}).get("epsilon"),
        split=audit.spec.get("split"),
        membership_source=audit.spec.get("membership_source") or "pipeline",
        auc=audit.auc,
        epsilon_lower_bound=audit.epsilon_lower_bound,
        gate=audit.gate,
        gate_reasons=[GateReason.model_validate(r) for r in audit.gate_reasons or []],
        policy=PolicyRead.model_validate(audit.policy) if audit.policy else None,
        created_at=audit.created_at,
        started_at=audit.started_at,
        finished_at=audit.finished_at,
        links={
            "self": f"/v1/audits/{audit.id}",
            "report": f"/v1/audits/{audit.id}/report",
            "deliveries": f"/v1/audits/{audit.id}/deliveries",
            "dashboard": f"/dashboard/audits/{audit.id}",
        },
    )


def model_names(*, db_session: Session, tenant: Tenant, limit: int) -> list[str]:
    """The tenant's model names, sorted (the dashboard offers them since its filter is exact)."""
    names = db_session.scalars(
        select(Audit.model_name)
        .where(Audit.tenant_id == tenant.id)
        .distinct()
        .order_by(Audit.model_name)
        .limit(limit)
    )
    return list(names)
