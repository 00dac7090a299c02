"""Create tenants and keys; resolve a presented key to its tenant."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.tenants.models import ApiKey, Tenant

KEY_PREFIX = "lg_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def get_or_create_tenant(*, db_session: Session, name: str) -> Tenant:
    tenant = db_session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        db_session.add(tenant)
        db_session.flush()
    return tenant


def create_key(*, db_session: Session, tenant_name: str) -> str:
    """Make a new key for the tenant (creating it if needed); the clear key is returned once."""
    tenant = get_or_create_tenant(db_session=db_session, name=tenant_name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    db_session.add(ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:10]))
    db_session.flush()
    return key


def tenant_for_key(*, db_session: Session, key: str) -> Tenant | None:
    api_key = db_session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )
    return api_key.tenant if api_key else None
