"""HTTP routes for release-gate policies. Thin: rules live in app.policies.service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from app.api.deps import CurrentTenant, SessionDep
from app.api.errors import API_ERRORS, error_responses
from app.policies import service
from app.policies.schemas import PolicyRead, PolicyRules

router = APIRouter(prefix="/v1/policies", tags=["policies"], responses=API_ERRORS)
NOT_FOUND = error_responses(404)

ModelName = Annotated[
    str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/@:+-]*$")
]


@router.get("", response_model=list[PolicyRead])
def list_policies(tenant: CurrentTenant, db_session: SessionDep) -> list[PolicyRead]:
    """The tenant default (if set) and every model policy."""
    return [service.to_read(p) for p in service.get_all(db_session=db_session, tenant=tenant)]


@router.get("/effective", response_model=PolicyRead)
def effective_policy(
    tenant: CurrentTenant,
    db_session: SessionDep,
    model_name: Annotated[str, Query(min_length=1, max_length=200)],
) -> PolicyRead:
    """The policy an audit of this model name submitted now would be gated by."""
    return service.applicable(db_session=db_session, tenant=tenant, model_name=model_name)


@router.put("/default", response_model=PolicyRead)
def put_default(rules: PolicyRules, tenant: CurrentTenant, db_session: SessionDep) -> PolicyRead:
    """Set the tenant's default policy (used for model names without one of their own)."""
    policy = service.put(db_session=db_session, tenant=tenant, model_name=None, rules=rules)
    return service.to_read(policy)


@router.get("/default", response_model=PolicyRead, responses=NOT_FOUND)
def get_default(tenant: CurrentTenant, db_session: SessionDep) -> PolicyRead:
    policy = service.get_or_404(db_session=db_session, tenant=tenant, model_name=None)
    return service.to_read(policy)


@router.delete("/default", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_default(tenant: CurrentTenant, db_session: SessionDep) -> None:
    service.delete(db_session=db_session, tenant=tenant, model_name=None)


@router.put("/models/{name:path}", response_model=PolicyRead)
def put_model(
    name: ModelName, rules: PolicyRules, tenant: CurrentTenant, db_session: SessionDep
) -> PolicyRead:
    """Set one model name's policy; it replaces the default for that name (no merging)."""
    policy = service.put(db_session=db_session, tenant=tenant, model_name=name, rules=rules)
    return service.to_read(policy)


@router.get("/models/{name:path}", response_model=PolicyRead, responses=NOT_FOUND)
def get_model(name: ModelName, tenant: CurrentTenant, db_session: SessionDep) -> PolicyRead:
    policy = service.get_or_404(db_session=db_session, tenant=tenant, model_name=name)
    return service.to_read(policy)


@router.delete("/models/{name:path}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_model(name: ModelName, tenant: CurrentTenant, db_session: SessionDep) -> None:
    service.delete(db_session=db_session, tenant=tenant, model_name=name)
