"""The release-gate vocabulary: an audit's gate result and each rule's outcome."""

from __future__ import annotations

from attacks.enums import SchemaEnum


class GateResult(SchemaEnum):
    """The gate's answer; also what an inconclusive verdict counts as under a policy."""

    PASS = "pass"
    FAIL = "fail"


class RuleStatus(SchemaEnum):
    """One rule's outcome; a quantity the audit did not measure does not fail the gate."""

    PASS = "pass"
    FAIL = "fail"
    NOT_MEASURED = "not_measured"
