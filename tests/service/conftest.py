"""Fixtures shared by the service tests: a tiny model and two datasets, uploaded for real."""

from __future__ import annotations

import pytest

from tests.service.helpers import dataset_bytes, tiny_model_archive, upload


@pytest.fixture(scope="module")
def model_body(tmp_path_factory) -> bytes:
    return tiny_model_archive(tmp_path_factory.mktemp("model"))


@pytest.fixture
def uploaded(client, auth, model_body) -> dict[str, str]:
    ids = {}
    for field, body, kind, name in (
        ("target", model_body, "model", "tiny.tar.gz"),
        ("members", dataset_bytes(20), "dataset", "members.jsonl"),
        ("non_members", dataset_bytes(20, offset=100), "dataset", "non_members.jsonl"),
    ):
        response = upload(client, auth, body, kind, name)
        assert response.status_code == 201, response.text
        ids[field] = response.json()["id"]
    return ids
