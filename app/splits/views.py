"""HTTP routes for audit splits. Thin: rules live in app.splits.service."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import FileResponse

from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from app.artifacts import service as artifact_service
from app.splits import service
from app.splits.models import AuditSplit
from app.splits.schemas import AuditSplitCreate, AuditSplitRead
from app.tenants.models import Tenant

router = APIRouter(prefix="/v1/audit-splits", tags=["audit-splits"])


def _split_or_404(db_session, tenant: Tenant, split_id: str) -> AuditSplit:
    row = service.get(db_session=db_session, tenant=tenant, split_id=split_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no audit split {split_id}")
    return row


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AuditSplitRead)
def create_split(
    split_in: AuditSplitCreate,
    tenant: CurrentTenant,
    db_session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    response: Response,
) -> AuditSplitRead:
    """Draw each candidate's membership with the service's fair coin; train on `members`."""
    try:
        row = service.create(
            db_session=db_session,
            storage=storage,
            settings=settings,
            tenant=tenant,
            split_in=split_in,
        )
    except service.SplitRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    response.headers["Location"] = f"/v1/audit-splits/{row.id}"
    return service.to_read(row)


@router.get("/{split_id}", response_model=AuditSplitRead)
def get_split(split_id: str, tenant: CurrentTenant, db_session: SessionDep) -> AuditSplitRead:
    return service.to_read(_split_or_404(db_session, tenant, split_id))


@router.get("/{split_id}/{side}.jsonl", response_class=FileResponse)
def get_split_records(
    split_id: str,
    side: Literal["members", "non_members"],
    tenant: CurrentTenant,
    db_session: SessionDep,
    storage: StorageDep,
) -> FileResponse:
    """One side of the split as JSONL: `members` is what the pipeline trains on."""
    row = _split_or_404(db_session, tenant, split_id)
    artifact_id = row.members_id if side == "members" else row.non_members_id
    artifact = artifact_service.get(db_session=db_session, tenant=tenant, artifact_id=artifact_id)
    assert artifact is not None  # written with the split, never deleted
    return FileResponse(
        storage.blob_path(artifact.sha256),
        media_type="application/x-ndjson",
        filename=f"{row.id}-{side}.jsonl",
    )
