"""HTTP routes for audit splits. Thin: rules live in app.splits.service."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from fastapi.responses import FileResponse

from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from app.api.errors import API_ERRORS, error_responses
from app.artifacts import service as artifact_service
from app.splits import service
from app.splits.schemas import AuditSplitCreate, AuditSplitRead

router = APIRouter(prefix="/v1/audit-splits", tags=["audit-splits"], responses=API_ERRORS)


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
    row = service.create(
        db_session=db_session,
        storage=storage,
        settings=settings,
        tenant=tenant,
        split_in=split_in,
    )
    response.headers["Location"] = f"/v1/audit-splits/{row.id}"
    return service.to_read(row)


@router.get("/{split_id}", response_model=AuditSplitRead, responses=error_responses(404))
def get_split(split_id: str, tenant: CurrentTenant, db_session: SessionDep) -> AuditSplitRead:
    row = service.get_or_404(db_session=db_session, tenant=tenant, split_id=split_id)
    return service.to_read(row)


@router.get("/{split_id}/{side}.jsonl", response_class=FileResponse, responses=error_responses(404))
def get_split_records(
    split_id: str,
    side: Literal["members", "non_members"],
    tenant: CurrentTenant,
    db_session: SessionDep,
    storage: StorageDep,
) -> FileResponse:
    """One side of the split as JSONL: `members` is what the pipeline trains on."""
    row = service.get_or_404(db_session=db_session, tenant=tenant, split_id=split_id)
    artifact_id = row.members_id if side == "members" else row.non_members_id
    artifact = artifact_service.get(db_session=db_session, tenant=tenant, artifact_id=artifact_id)
    assert artifact is not None  # written with the split, never deleted
    return FileResponse(
        storage.blob_path(artifact.sha256),
        media_type="application/x-ndjson",
        filename=f"{row.id}-{side}.jsonl",
    )
