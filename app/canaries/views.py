"""HTTP routes for canary sets. Thin: rules live in app.canaries.service."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response, status

from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from app.api.errors import API_ERRORS, error_responses
from app.canaries import service
from app.canaries.schemas import CanarySetCreate, CanarySetCreated, CanarySetRead

router = APIRouter(prefix="/v1/canary-sets", tags=["canaries"], responses=API_ERRORS)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CanarySetCreated)
def create_canary_set(
    canary_set_in: CanarySetCreate,
    tenant: CurrentTenant,
    db_session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    response: Response,
) -> CanarySetCreated:
    """Generate canaries; returns the set (secrets masked) and the records to train on."""
    row = service.create(
        db_session=db_session,
        storage=storage,
        settings=settings,
        tenant=tenant,
        canary_set_in=canary_set_in,
    )
    response.headers["Location"] = f"/v1/canary-sets/{row.id}"
    read = service.to_read(row)
    return CanarySetCreated(**read.model_dump(), records=service.records_of(row))


@router.get("/{canary_set_id}", response_model=CanarySetRead, responses=error_responses(404))
def get_canary_set(
    canary_set_id: str, tenant: CurrentTenant, db_session: SessionDep, reveal: bool = False
) -> CanarySetRead:
    """The set; secrets, texts and seed only with `?reveal=true`."""
    row = service.get_or_404(db_session=db_session, tenant=tenant, canary_set_id=canary_set_id)
    return service.to_read(row, reveal=reveal)


@router.get(
    "/{canary_set_id}/records.jsonl", response_class=Response, responses=error_responses(404)
)
def get_training_records(
    canary_set_id: str, tenant: CurrentTenant, db_session: SessionDep
) -> Response:
    """The inserted canaries, each repeated, one JSON record a line: mix them into training."""
    row = service.get_or_404(db_session=db_session, tenant=tenant, canary_set_id=canary_set_id)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in service.records_of(row))
    return Response(
        body,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{row.id}-records.jsonl"'},
    )
