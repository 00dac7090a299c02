"""`options.batch_size` may be left out (null): the worker then picks it for its device."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.audits.schemas import AuditOptions


def test_batch_size_defaults_to_null_and_keeps_its_bounds() -> None:
    assert AuditOptions().batch_size is None
    assert AuditOptions(batch_size=None).batch_size is None
    assert AuditOptions.model_validate({"batch_size": 64}).batch_size == 64
    for bad in (0, 1025):
        with pytest.raises(ValidationError):
            AuditOptions(batch_size=bad)


def test_the_openapi_schema_allows_null_within_the_same_bounds() -> None:
    field = AuditOptions.model_json_schema()["properties"]["batch_size"]
    kinds = {option.get("type") for option in field["anyOf"]}
    assert kinds == {"integer", "null"} and field["default"] is None
    integer = next(option for option in field["anyOf"] if option.get("type") == "integer")
    assert (integer["minimum"], integer["maximum"]) == (1, 1024)
