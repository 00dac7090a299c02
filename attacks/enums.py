"""Vocabulary shared by the attack library and the service: string enums that stay strings.

A `SchemaEnum` member is a `str` (it compares, hashes, formats and serialises as its value),
and pydantic describes a field of one exactly as it would the matching `Literal`: an inline
`{"type": "string", "enum": [...]}`, with the same validation message. So replacing a Literal
by an enum changes neither stored JSON, database values nor the OpenAPI document.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic_core import core_schema


class SchemaEnum(StrEnum):
    """A StrEnum that pydantic validates and documents like a Literal of its values."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.literal_schema([member.value for member in cls])
        )


class VerdictStatus(SchemaEnum):
    """What the audit says about the declared DP claim."""

    CONSISTENT = "consistent"
    VIOLATION = "violation"
    INCONCLUSIVE = "inconclusive"
    NO_CLAIM = "no-claim"


class AttackGroup(SchemaEnum):
    """What an attack reads beyond the audited model's signals, so what an audit must supply:
    a reference attack needs reference models (trained or uploaded) and a population."""

    THRESHOLD = "threshold"
    REFERENCE = "reference"
