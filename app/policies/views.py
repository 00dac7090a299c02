"""HTTP routes for release-gate policies. Thin: rules live in app.policies.service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from app.api.deps import CurrentTenant, SessionDep
from app.policies import service
from app.policies.schemas import PolicyRead, PolicyRules

router = APIRouter(prefix="/v1/policies", tags=["policies"])

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


def _missing(model_name: str | None) -> HTTPException:
    what = "no default policy" if model_name is None else f"no policy for model {model_name}"
    return HTTPException(status.HTTP_404_NOT_FOUND, what)


def _read_or_404(db_session, tenant, model_name: str | None) -> PolicyRead:
    policy = service.get(db_session=db_session, tenant=tenant, model_name=model_name)
    if policy is None:
        raise _missing(model_name)
    return service.to_read(policy)


def _delete_or_404(db_session, tenant, model_name: str | None) -> None:
    if not service.delete(db_session=db_session, tenant=tenant, model_name=model_name):
        raise _missing(model_name)


@router.put("/default", response_model=PolicyRead)
def put_default(rules: PolicyRules, tenant: CurrentTenant, db_session: SessionDep) -> PolicyRead:
    """Set the tenant's default policy (used for model names without one of their own)."""
    policy = service.put(db_session=db_session, tenant=tenant, model_name=None, rules=rules)
    return service.to_read(policy)


@router.get("/default", response_model=PolicyRead)
def get_default(tenant: CurrentTenant, db_session: SessionDep) -> PolicyRead:
    return _read_or_404(db_session, tenant, None)


@router.delete("/default", status_code=status.HTTP_204_NO_CONTENT)
def delete_default(tenant: CurrentTenant, db_session: SessionDep) -> None:
    _delete_or_404(db_session, tenant, None)


@router.put("/models/{name:path}", response_model=PolicyRead)
def put_model(
    name: ModelName, rules: PolicyRules, tenant: CurrentTenant, db_session: SessionDep
) -> PolicyRead:
    """Set one model name's policy; it replaces the default for that name (no merging)."""
    policy = service.put(db_session=db_session, tenant=tenant, model_name=name, rules=rules)
    return service.to_read(policy)


@router.get("/models/{name:path}", response_model=PolicyRead)
def get_model(name: ModelName, tenant: CurrentTenant, db_session: SessionDep) -> PolicyRead:
    return _read_or_404(db_session, tenant, name)


@router.delete("/models/{name:path}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(name: ModelName, tenant: CurrentTenant, db_session: SessionDep) -> None:
    _delete_or_404(db_session, tenant, name)
