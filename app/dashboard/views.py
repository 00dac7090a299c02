"""Server-rendered dashboard of a tenant's audits (placeholder until the pages land)."""

from fastapi import APIRouter

router = APIRouter(tags=["dashboard"], include_in_schema=False)
