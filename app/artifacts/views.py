"""HTTP routes for artifacts: a raw streamed body, never buffered whole in memory."""

from __future__ import annotations

import errno
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from app.artifacts import service
from app.artifacts.errors import ArtifactRejected, UploadTooLarge
from app.artifacts.schemas import ArtifactKind, ArtifactRead

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ArtifactRead,
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
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"upload of {declared} bytes exceeds the limit of {settings.max_upload_bytes} bytes",
        )
    try:
        name = service.clean_filename(filename)
        received = await storage.receive(request.stream(), limit=settings.max_upload_bytes)
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
    except UploadTooLarge as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from exc
    except ArtifactRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # The partial file is already removed (receive and create clean up after themselves).
        raise HTTPException(
            status.HTTP_507_INSUFFICIENT_STORAGE,
            "the storage volume is full; nothing was kept. Free space (`leakgate gc`) or "
            "enlarge the volume, then upload again",
        ) from exc
    return ArtifactRead.model_validate(artifact)


@router.get("", response_model=list[ArtifactRead])
def list_artifacts(
    tenant: CurrentTenant,
    db_session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ArtifactRead]:
    items = service.get_all(db_session=db_session, tenant=tenant, limit=limit, offset=offset)
    return [ArtifactRead.model_validate(a) for a in items]


@router.get("/{artifact_id}", response_model=ArtifactRead)
def get_artifact(artifact_id: str, tenant: CurrentTenant, db_session: SessionDep) -> ArtifactRead:
    artifact = service.get(db_session=db_session, tenant=tenant, artifact_id=artifact_id)
    if artifact is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no artifact {artifact_id}")
    return ArtifactRead.model_validate(artifact)
