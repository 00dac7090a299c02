"""Create and read canary sets. Generation itself is attacks.canaries; this stores it."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import service as artifact_service
from app.artifacts.storage import Storage
from app.canaries.models import CanarySet
from app.canaries.schemas import CanaryRead, CanarySetCreate, CanarySetRead
from app.core.config import Settings
from app.core.errors import Rejected, found
from app.tenants.models import Tenant
from attacks.canaries.generation import Canary, Template, generate_canaries, training_records
from attacks.data import read_records


class CanarySetRejected(Rejected):
    """The request is well-formed but cannot be generated (HTTP 422)."""


def create(
    *,
    db_session: Session,
    storage: Storage,
    settings: Settings,
    tenant: Tenant,
    canary_set_in: CanarySetCreate,
) -> CanarySet:
    spec = canary_set_in
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**62)
    template = texts = None
    try:
        if spec.template is not None:
            template = Template.resolve(spec.template, spec.alphabet)
        else:
            assert spec.dataset is not None
            texts = _dataset_texts(db_session, storage, settings, tenant, spec.dataset)
        canaries = generate_canaries(
            template,
            texts=texts,
            count=spec.count,
            repetitions=spec.repetitions,
            seed=seed,
            labels=spec.labels,
        )
    except ValueError as exc:
        raise CanarySetRejected(str(exc)) from exc
    row = CanarySet(
        tenant_id=tenant.id,
        task=spec.task,
        kind=spec.kind,
        template=template.text if template else None,
        alphabet=template.alphabet if template else None,
        count=spec.count,
        repetitions=spec.repetitions,
        seed=seed,
        labels=spec.labels,
        dataset_id=spec.dataset,
        canaries=[c.to_dict() for c in canaries],
    )
    db_session.add(row)
    db_session.commit()
    return row


def _dataset_texts(db_session, storage, settings, tenant, dataset_id: str) -> list[str]:
    artifact = artifact_service.get(db_session=db_session, tenant=tenant, artifact_id=dataset_id)
    if artifact is None or artifact.kind != "dataset":
        raise CanarySetRejected(f"dataset: no dataset artifact {dataset_id!r}")
    records = read_records(
        storage.blob_path(artifact.sha256),
        artifact.meta["format"],
        max_records=settings.max_dataset_records,
        require_label=False,
    )
    texts = [r.text for r in records if r.text]
    if not texts:
        raise CanarySetRejected(f"dataset {dataset_id!r} has no texts")
    return texts


def get(*, db_session: Session, tenant: Tenant, canary_set_id: str) -> CanarySet | None:
    """Another tenant's set is indistinguishable from a missing one."""
    return db_session.scalar(
        select(CanarySet).where(CanarySet.id == canary_set_id, CanarySet.tenant_id == tenant.id)
    )


def get_or_404(*, db_session: Session, tenant: Tenant, canary_set_id: str) -> CanarySet:
    row = get(db_session=db_session, tenant=tenant, canary_set_id=canary_set_id)
    return found(row, "canary set", canary_set_id)


def canaries_of(row: CanarySet) -> list[Canary]:
    return [Canary(**c) for c in row.canaries]


def template_of(row: CanarySet) -> Template | None:
    return Template(row.template, row.alphabet or "") if row.template else None


def records_of(row: CanarySet) -> list[dict]:
    return training_records(canaries_of(row))


def to_read(row: CanarySet, *, reveal: bool = False) -> CanarySetRead:
    template = template_of(row)
    canaries = canaries_of(row)
    masked_text = template.render("*" * template.n_slots) if template else None
    return CanarySetRead(
        id=row.id,
        task=row.task,
        kind=row.kind,
        template=row.template,
        alphabet=row.alphabet,
        count=row.count,
        repetitions=row.repetitions,
        seed=row.seed if reveal else None,
        labels=row.labels,
        dataset=row.dataset_id,
        n_inserted=sum(c.inserted for c in canaries),
        n_held_out=sum(not c.inserted for c in canaries),
        revealed=reveal,
        created_at=row.created_at,
        canaries=[
            CanaryRead(
                id=c.id,
                text=c.text if reveal else masked_text,
                secret=c.secret if reveal else None,
                label=c.label,
                inserted=c.inserted,
                repetitions=c.repetitions,
            )
            for c in canaries
        ],
        links={
            "self": f"/v1/canary-sets/{row.id}",
            "records": f"/v1/canary-sets/{row.id}/records.jsonl",
        },
    )
