"""HTTP routes for canary sets. Thin: rules live in app.canaries.service."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Response, status

from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from app.canaries import service
from app.canaries.models import CanarySet
from app.canaries.schemas import CanarySetCreate, CanarySetCreated, CanarySetRead
from app.tenants.models import Tenant

router = APIRouter(prefix="/v1/canary-sets", tags=["canaries"])


def _set_or_404(db_session, tenant: Tenant, canary_set_id: str) -> CanarySet:
    row = service.get(db_session=db_session, tenant=tenant, canary_set_id=canary_set_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no canary set {canary_set_id}")
    return row


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
    try:
        row = service.create(
            db_session=db_session,
            storage=storage,
            settings=settings,
            tenant=tenant,
            canary_set_in=canary_set_in,
        )
    except service.CanarySetRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    response.headers["Location"] = f"/v1/canary-sets/{row.id}"
    read = service.to_read(row)
    return CanarySetCreated(**read.model_dump(), records=service.records_of(row))


@router.get("/{canary_set_id}", response_model=CanarySetRead)
def get_canary_set(
    canary_set_id: str, tenant: CurrentTenant, db_session: SessionDep, reveal: bool = False
) -> CanarySetRead:
    """The set; secrets, texts and seed only with `?reveal=true`."""
    return service.to_read(_set_or_404(db_session, tenant, canary_set_id), reveal=reveal)


@router.get("/{canary_set_id}/records.jsonl", response_class=Response)
def get_training_records(
    canary_set_id: str, tenant: CurrentTenant, db_session: SessionDep
) -> Response:
    """The inserted canaries, each repeated, one JSON record a line: mix them into training."""
    row = _set_or_404(db_session, tenant, canary_set_id)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in service.records_of(row))
    return Response(
        body,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{row.id}-records.jsonl"'},
    )
