"""Dependencies that routes declare in their signatures: a database session, the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.artifacts.storage import Storage
from app.core.config import Settings, get_settings
from app.core.db import get_db
from app.core.errors import Unauthorized
from app.tenants.models import Tenant
from app.tenants.service import tenant_for_key

SessionDep = Annotated[Session, Depends(get_db)]

# Pages start at most this far in: more than any account holds, well inside a 64-bit OFFSET.
MAX_OFFSET = 2**31 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
SettingsDep = Annotated[Settings, Depends(get_settings)]

_bearer = HTTPBearer(auto_error=False, description="An API key from `leakgate keys create`.")


def current_tenant(
    db_session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' (create one with "
            "`leakgate keys create --tenant NAME`)"
        )
    tenant = tenant_for_key(db_session=db_session, key=credentials.credentials)
    if tenant is None:
        raise Unauthorized("unknown or revoked API key")
    return tenant


CurrentTenant = Annotated[Tenant, Depends(current_tenant)]


def get_storage(request: Request) -> Storage:
    return request.app.state.storage


StorageDep = Annotated[Storage, Depends(get_storage)]
