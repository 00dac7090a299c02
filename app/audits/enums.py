"""The audit vocabulary: the states an audit moves through."""

from __future__ import annotations

from attacks.enums import SchemaEnum


class AuditState(SchemaEnum):
    """queued -> running -> one of the final states; a stale running audit is queued again."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({AuditState.SUCCEEDED, AuditState.FAILED, AuditState.CANCELLED})
ACTIVE_STATES = frozenset(AuditState) - FINAL_STATES
