"""Create and read audit splits: the service, not the pipeline, decides who is a member.

The one-run bounds (Steinke, Nasr & Jagielski 2023; Mahloujifar, Melis & Chaudhuri 2024) are
proven when each candidate's membership is an independent fair coin. Here the coin is the
service's: a seed from `secrets` (or one the client gives, recorded as such), one coin per
distinct record, so copies of one text never land on both sides.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import service as artifact_service
from app.artifacts.errors import ArtifactRejected
from app.artifacts.models import Artifact
from app.artifacts.schemas import ArtifactKind
from app.artifacts.storage import Received, Storage
from app.core.config import Settings
from app.core.errors import Rejected, found
from app.core.models import new_id
from app.splits.models import AuditSplit
from app.splits.schemas import AuditSplitCreate, AuditSplitRead
from app.tenants.models import Tenant
from attacks.data import DatasetError, Record, read_records
from attacks.data_checks import normalise


class SplitRejected(Rejected):
    """The request is well-formed but the candidates cannot be split (HTTP 422)."""


def coin_key(record: Record) -> str:
    """Records that share this key share one coin: the normalised text (Unicode NFC, casefold,
    whitespace collapsed), whatever the label; records without text by their id."""
    if not record.text:
        return "id\x1f" + record.id
    return normalise(record.text)


def draw_membership(records: list[Record], seed: int) -> np.ndarray:
    """One fair coin per distinct record (in order of first occurrence), seeded: reproducible
    from the stored seed, and independent of anything the model or the pipeline did."""
    keys: dict[str, int] = {}
    index = np.array([keys.setdefault(coin_key(r), len(keys)) for r in records], dtype=np.int64)
    coins = np.random.default_rng(seed).random(len(keys)) < 0.5
    return coins[index]


def _jsonl(records: list[Record]) -> bytes:
    """Records as JSONL with explicit ids, so results join back to the candidates file."""
    lines = []
    for record in records:
        item: dict[str, object] = {"id": record.id}
        if record.text:
            item["text"] = record.text
        if record.label is not None:
            item["label"] = record.label
        if record.outputs is not None and record.outputs_kind:
            item[record.outputs_kind] = list(record.outputs)
        lines.append(json.dumps(item, ensure_ascii=False) + "\n")
    return "".join(lines).encode()


def _store_dataset(
    db_session: Session,
    storage: Storage,
    settings: Settings,
    tenant: Tenant,
    body: bytes,
    filename: str,
) -> Artifact:
    """A dataset artifact written by the service, checked like any upload."""
    path = storage.new_tmp_path()
    path.write_bytes(body)
    received = Received(path, hashlib.sha256(body).hexdigest(), len(body))
    return artifact_service.create(
        db_session=db_session,
        storage=storage,
        settings=settings,
        tenant=tenant,
        kind=ArtifactKind.dataset,
        filename=filename,
        received=received,
    )


def create(
    *,
    db_session: Session,
    storage: Storage,
    settings: Settings,
    tenant: Tenant,
    split_in: AuditSplitCreate,
) -> AuditSplit:
    dataset = artifact_service.get(
        db_session=db_session, tenant=tenant, artifact_id=split_in.dataset
    )
    if dataset is None or dataset.kind != "dataset":
        raise SplitRejected(
            f"dataset: no dataset artifact {split_in.dataset!r} (upload it with POST /v1/artifacts)"
        )
    try:
        records = read_records(
            storage.blob_path(dataset.sha256),
            dataset.meta["format"],
            max_records=settings.max_dataset_records,
            require_label=False,
        )
    except DatasetError as exc:
        raise SplitRejected(f"dataset: {exc}") from exc
    seed_source = "client" if split_in.seed is not None else "service"
    seed = split_in.seed if split_in.seed is not None else secrets.randbelow(2**62)
    member = draw_membership(records, seed)
    members = [r for r, m in zip(records, member, strict=True) if m]
    non_members = [r for r, m in zip(records, member, strict=True) if not m]
    if not members or not non_members:
        raise SplitRejected(
            f"dataset: the coin put all {len(records)} candidate(s) on one side; a split needs "
            "many candidates (hundreds or more for a useful bound)"
        )
    split_id = new_id()
    try:
        stored = {
            side: _store_dataset(
                db_session,
                storage,
                settings,
                tenant,
                _jsonl(rows),
                f"split-{split_id}-{side}.jsonl",
            )
            for side, rows in (("members", members), ("non_members", non_members))
        }
    except ArtifactRejected as exc:  # the candidates passed the same checks: should not happen
        raise SplitRejected(f"dataset: {exc}") from exc
    row = AuditSplit(
        id=split_id,
        tenant_id=tenant.id,
        dataset_id=dataset.id,
        members_id=stored["members"].id,
        non_members_id=stored["non_members"].id,
        seed=seed,
        seed_source=seed_source,
        inclusion_probability=split_in.inclusion_probability,
        n_candidates=len(records),
        n_members=len(members),
        n_non_members=len(non_members),
        member_ids=[r.id for r in members],
    )
    db_session.add(row)
    db_session.commit()
    return row


def get(*, db_session: Session, tenant: Tenant, split_id: str) -> AuditSplit | None:
    """Another tenant's split is indistinguishable from a missing one."""
    return db_session.scalar(
        select(AuditSplit).where(AuditSplit.id == split_id, AuditSplit.tenant_id == tenant.id)
    )


def get_or_404(*, db_session: Session, tenant: Tenant, split_id: str) -> AuditSplit:
    row = get(db_session=db_session, tenant=tenant, split_id=split_id)
    return found(row, "audit split", split_id)


def to_read(row: AuditSplit) -> AuditSplitRead:
    return AuditSplitRead(
        id=row.id,
        dataset=row.dataset_id,
        members=row.members_id,
        non_members=row.non_members_id,
        seed=row.seed,
        seed_source=row.seed_source,  # type: ignore[arg-type]
        inclusion_probability=row.inclusion_probability,
        n_candidates=row.n_candidates,
        n_members=row.n_members,
        n_non_members=row.n_non_members,
        # SQLite gives back naive datetimes; they were stored in UTC.
        created_at=row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC),
        links={
            "self": f"/v1/audit-splits/{row.id}",
            "members": f"/v1/audit-splits/{row.id}/members.jsonl",
            "non_members": f"/v1/audit-splits/{row.id}/non_members.jsonl",
        },
    )
