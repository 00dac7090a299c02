"""Create tenants and keys; resolve a presented key to its tenant."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.core.timeutil import utcnow
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


def list_keys(*, db_session: Session, tenant_name: str | None = None) -> list[ApiKey]:
    """Every key (revoked ones too), oldest first, optionally of one tenant."""
    query = select(ApiKey).join(Tenant).order_by(ApiKey.created_at, ApiKey.id)
    if tenant_name is not None:
        query = query.where(Tenant.name == tenant_name)
    return list(db_session.scalars(query))


class KeyNotFound(LookupError):
    """No key, or more than one, answers to the prefix or id given."""


def revoke_key(*, db_session: Session, prefix_or_id: str) -> tuple[ApiKey, bool]:
    """Revoke the key with this id or prefix; True when this call revoked it (False: it was
    already). Requests check `revoked_at` on every call, so the key stops working at once."""
    matches = list(
        db_session.scalars(
            select(ApiKey).where(or_(ApiKey.id == prefix_or_id, ApiKey.prefix == prefix_or_id))
        )
    )
    if not matches:
        raise KeyNotFound(f"no API key has the id or prefix {prefix_or_id!r} (see `keys list`)")
    if len(matches) > 1:
        raise KeyNotFound(
            f"{len(matches)} keys share the prefix {prefix_or_id!r}; revoke one by its id"
        )
    key = matches[0]
    if key.revoked_at is not None:
        return key, False
    key.revoked_at = utcnow()
    db_session.flush()
    return key, True
