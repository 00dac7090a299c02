"""One vocabulary: enums that validate, document and serialise exactly as the strings did."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.audits.enums import FINAL_STATES, AuditState
from app.audits.schemas import REFERENCE_ATTACKS, AuditRead
from app.policies.enums import GateResult, RuleStatus
from app.policies.schemas import GateReason
from attacks.enums import AttackGroup, VerdictStatus
from attacks.mia import ATTACKS, get_attack, group_of


def test_enum_fields_are_documented_inline_like_literals() -> None:
    schema = AuditRead.model_json_schema()
    state = schema["properties"]["state"]
    assert state == {"enum": [s.value for s in AuditState], "title": "State", "type": "string"}
    assert "AuditState" not in json.dumps(schema)  # no $ref: the OpenAPI document is unchanged


def test_values_round_trip_as_plain_strings() -> None:
    reason = GateReason.model_validate(
        {"rule": "max_auc", "status": "not_measured", "measured": None, "limit": 0.6, "message": ""}
    )
    assert reason.status is RuleStatus.NOT_MEASURED
    assert json.loads(reason.model_dump_json())["status"] == "not_measured"
    assert json.dumps({"gate": GateResult.PASS, "verdict": VerdictStatus.NO_CLAIM}) == (
        '{"gate": "pass", "verdict": "no-claim"}'
    )
    assert f"{AuditState.CANCELLED}" == "cancelled" and "failed" in FINAL_STATES
    with pytest.raises(ValidationError, match="'pass', 'fail' or 'not_measured'"):
        GateReason.model_validate({**reason.model_dump(), "status": "skipped"})


def test_reference_attacks_are_the_ones_that_say_they_need_references() -> None:
    assert set(REFERENCE_ATTACKS) == {n for n in ATTACKS if get_attack(n).needs_references}
    assert group_of("lira") is AttackGroup.REFERENCE and group_of("loss") is AttackGroup.THRESHOLD
