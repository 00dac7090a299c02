"""schemathesis against the API on PostgreSQL: generated requests, valid and invalid, must never
get a server error, and every answer must be one the OpenAPI document declares, in its schema.

Bounded: a few examples per operation (a few hundred cases in all), so it fits the slow suite.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.utils.env import Backend, backend_env, reset_caches
from tests.utils.factories import new_key

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def backend(pg_schema, tmp_path_factory) -> Iterator[Backend]:
    """PostgreSQL only: the backend where NUL bytes and 64-bit overflows used to be 500s."""
    from app.core.migrate import upgrade

    env = backend_env("postgres", tmp_path_factory.mktemp("home-fuzz"), pg_schema)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_caches()
    upgrade()
    yield Backend("postgres", env)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    reset_caches()


def _fuzz(operation, mode: GenerationMode, auth: dict[str, str], failures: list[str]) -> int:
    """Run one operation's generated cases; record each failing check, keep going."""
    cases = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case) -> None:
        nonlocal cases
        cases += 1
        response = case.call(headers=auth)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # a FailureGroup: record it, go on
            label = f"{mode} {operation.label}: {response.status_code}"
            failures.append(f"{label}: {str(exc).strip()[:600]}\n  {case.as_curl_command()}")

    with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (no inputs)
        run()
    return cases


def test_no_server_error_and_answers_match_the_schema(activate):
    """Every operation, valid and invalid input: 0 server errors, 0 schema violations."""
    from app.main import create_app

    auth = {"Authorization": f"Bearer {new_key()}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(run_sweeper=False))
    failures: list[str] = []
    total = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            total += _fuzz(operation, mode, auth, failures)
    print(f"schemathesis: {total} cases, {len(failures)} failing")
    assert total >= 200, f"only {total} cases ran"
    assert not failures, f"{len(failures)} failing case(s) of {total}:\n" + "\n".join(failures)
