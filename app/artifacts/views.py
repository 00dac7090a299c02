"""HTTP routes for artifacts: a raw streamed body, never buffered whole in memory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from app.api.deps import CurrentTenant, Offset, SessionDep, SettingsDep, StorageDep
from app.api.errors import API_ERRORS, error_responses
from app.artifacts import service
from app.artifacts.errors import UploadTooLarge
from app.artifacts.schemas import ArtifactKind, ArtifactPage, ArtifactRead

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"], responses=API_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ArtifactRead,
    responses=error_responses(408, 413, 507),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_artifact(
    request: Request,
    tenant: CurrentTenant,
    db_session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    kind: Annotated[ArtifactKind, Query(description="model (archive) or dataset (JSONL/CSV)")],
    filename: Annotated[str, Query(description="original file name; its suffix gives the format")],
) -> ArtifactRead:
    """Upload a model archive (.tar.gz/.zip of a save_pretrained folder) or a dataset."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise UploadTooLarge(
            f"upload of {declared} bytes exceeds the limit of {settings.max_upload_bytes} bytes"
        )
    name = service.clean_filename(filename)
    received = await storage.receive(
        request.stream(),
        limit=settings.max_upload_bytes,
        idle_timeout_s=settings.upload_idle_timeout_s,
        total_timeout_s=settings.upload_timeout_s,
        reserve_bytes=settings.storage_reserve_bytes,
    )
    artifact = await run_in_threadpool(
        service.create,
        db_session=db_session,
        storage=storage,
        settings=settings,
        tenant=tenant,
        kind=kind,
        filename=name,
        received=received,
    )
    return ArtifactRead.model_validate(artifact)


@router.get("", response_model=ArtifactPage)
def list_artifacts(
    tenant: CurrentTenant,
    db_session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> ArtifactPage:
    """One page of the tenant's artifacts, newest first (the same page shape as audits)."""
    items, total = service.get_all(db_session=db_session, tenant=tenant, limit=limit, offset=offset)
    return ArtifactPage(
        items=[ArtifactRead.model_validate(a) for a in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{artifact_id}", response_model=ArtifactRead, responses=error_responses(404))
def get_artifact(artifact_id: str, tenant: CurrentTenant, db_session: SessionDep) -> ArtifactRead:
    artifact = service.get_or_404(db_session=db_session, tenant=tenant, artifact_id=artifact_id)
    return ArtifactRead.model_validate(artifact)
