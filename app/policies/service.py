"""Set, read and delete policies; find the one that applies to a model name."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import NotFound
from app.core.timeutil import utcnow
from app.policies.models import Policy
from app.policies.schemas import PolicyRead, PolicyRules
from app.tenants.models import Tenant


def get(*, db_session: Session, tenant: Tenant, model_name: str | None) -> Policy | None:
    """The tenant default (`model_name` None) or the policy of one model name."""
    query = select(Policy).where(Policy.tenant_id == tenant.id)
    if model_name is None:
        query = query.where(Policy.model_name.is_(None))
    else:
        query = query.where(Policy.model_name == model_name)
    return db_session.scalar(query)


def _missing(model_name: str | None) -> NotFound:
    if model_name is None:
        return NotFound("no default policy (set one with PUT /v1/policies/default)")
    return NotFound(f"no policy for model {model_name}", title="Policy not found")


def get_or_404(*, db_session: Session, tenant: Tenant, model_name: str | None) -> Policy:
    policy = get(db_session=db_session, tenant=tenant, model_name=model_name)
    if policy is None:
        raise _missing(model_name)
    return policy


def get_all(*, db_session: Session, tenant: Tenant) -> list[Policy]:
    """The default first, then the model policies by name."""
    policies = db_session.scalars(select(Policy).where(Policy.tenant_id == tenant.id))
    return sorted(policies, key=lambda p: (p.model_name is not None, p.model_name or ""))


def put(
    *, db_session: Session, tenant: Tenant, model_name: str | None, rules: PolicyRules
) -> Policy:
    """Create or replace. A model policy replaces the default whole; it does not merge."""
    policy = get(db_session=db_session, tenant=tenant, model_name=model_name)
    if policy is None:
        policy = Policy(tenant_id=tenant.id, model_name=model_name)
        db_session.add(policy)
    policy.rules = rules.model_dump(mode="json")
    policy.updated_at = utcnow()
    try:
        db_session.commit()
    except IntegrityError:  # a concurrent PUT created it first: replace that one
        db_session.rollback()
        return put(db_session=db_session, tenant=tenant, model_name=model_name, rules=rules)
    return policy


def delete(*, db_session: Session, tenant: Tenant, model_name: str | None) -> None:
    """Remove the policy, or NotFound when there is none to remove."""
    policy = get_or_404(db_session=db_session, tenant=tenant, model_name=model_name)
    db_session.delete(policy)
    db_session.commit()


def applicable(*, db_session: Session, tenant: Tenant, model_name: str) -> PolicyRead:
    """The model's policy, else the tenant default, else the built-in `PolicyRules()`."""
    policy = get(db_session=db_session, tenant=tenant, model_name=model_name) or get(
        db_session=db_session, tenant=tenant, model_name=None
    )
    if policy is None:
        return PolicyRead(scope="built-in", model_name=None, rules=PolicyRules(), updated_at=None)
    return to_read(policy)


def to_read(policy: Policy) -> PolicyRead:
    return PolicyRead(
        scope="default" if policy.model_name is None else "model",
        model_name=policy.model_name,
        rules=PolicyRules.model_validate(policy.rules),
        updated_at=policy.updated_at,
    )
