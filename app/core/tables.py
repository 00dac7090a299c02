"""Imports every table so that metadata (Alembic, tests) sees the whole schema."""

from app.artifacts.models import Artifact
from app.audits.models import Audit, Report
from app.canaries.models import CanarySet
from app.core.db import Base
from app.policies.models import Policy
from app.splits.models import AuditSplit
from app.tenants.models import ApiKey, Tenant
from app.webhooks.models import WebhookDelivery

__all__ = [
    "ApiKey",
    "Artifact",
    "Audit",
    "AuditSplit",
    "Base",
    "CanarySet",
    "Policy",
    "Report",
    "Tenant",
    "WebhookDelivery",
]
