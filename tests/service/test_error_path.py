"""The one error path: hostile or broken input and infrastructure faults get a documented
ErrorBody (4xx, 503, 507), never a 500; OpenAPI declares each status where it occurs."""

from __future__ import annotations

import errno
import io
import json
import logging
import zipfile

import pytest

from tests.utils.env import reset_caches
from tests.utils.factories import dataset_bytes, jsonl, upload

SPEC_IDS = {"target": "t", "members": "m", "non_members": "n"}


def assert_error_body(response, status: int, *needles: str) -> dict:
    """The answer has the status, is JSON, and matches ErrorBody exactly."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "errors"}, body
    assert isinstance(body["detail"], str)
    assert body["errors"] is None or all(set(e) == {"loc", "msg", "type"} for e in body["errors"])
    for needle in needles:
        assert needle in body["detail"], body
    return body


# -- OpenAPI ---------------------------------------------------------------------------------


def test_openapi_declares_every_error_with_the_one_schema(client):
    doc = client.get("/openapi.json").json()
    error_ref = "#/components/schemas/ErrorBody"
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    expected = {
        ("get", "/v1/audits/{audit_id}"): {"401", "404", "422", "503"},
        ("get", "/v1/audits/{audit_id}/report"): {"401", "404", "409", "422", "503"},
        ("post", "/v1/audits/{audit_id}/cancel"): {"404", "409"},
        ("post", "/v1/artifacts"): {"401", "413", "422", "503", "507"},
        ("get", "/v1/canary-sets/{canary_set_id}"): {"404"},
        ("delete", "/v1/policies/default"): {"401", "404"},
        ("get", "/v1/audits/{audit_id}/deliveries"): {"404"},
    }
    for (method, path), codes in expected.items():
        responses = doc["paths"][path][method]["responses"]
        assert codes <= set(responses), (method, path, sorted(responses))
        for code in codes:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": error_ref}, (method, path, code)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1") and "422" in operation["responses"]:
                schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, (method, path)


# -- what the handlers send ------------------------------------------------------------------


def test_not_found_unauthorized_conflict_and_validation_share_the_body(client, auth):
    body = assert_error_body(client.get("/v1/audits/nope", headers=auth), 404, "no audit nope")
    assert body["errors"] is None
    assert_error_body(client.get("/v1/artifacts/nope", headers=auth), 404, "no artifact nope")
    assert_error_body(client.get("/v1/canary-sets/x", headers=auth), 404, "no canary set x")
    assert_error_body(client.get("/v1/policies/default", headers=auth), 404, "no default policy")
    assert_error_body(client.delete("/v1/policies/models/m", headers=auth), 404, "no policy")
    assert_error_body(client.get("/v1/audits/nope/deliveries", headers=auth), 404, "no audit")
    unauthorized = client.get("/v1/audits")
    assert_error_body(unauthorized, 401, "missing API key")
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    body = assert_error_body(
        client.get("/v1/audits", params={"limit": 0}, headers=auth), 422, "query.limit"
    )
    assert body["errors"][0]["loc"] == ["query", "limit"]
    assert_error_body(client.get("/v1/nowhere", headers=auth), 404)


def test_report_of_an_unfinished_audit_is_409_and_cancel_twice_is_409(client, auth, uploaded):
    audit = client.post(
        "/v1/audits", json={"model": {"name": "m"}, **uploaded}, headers=auth
    ).json()
    assert_error_body(
        client.get(f"/v1/audits/{audit['id']}/report", headers=auth), 409, "has no report"
    )
    assert client.post(f"/v1/audits/{audit['id']}/cancel", headers=auth).status_code == 202
    assert_error_body(
        client.post(f"/v1/audits/{audit['id']}/cancel", headers=auth), 409, "already ended"
    )


@pytest.mark.parametrize(
    "path, params, needle",
    [
        ("/v1/audits", {"model_name": "a\x00b"}, "'model_name'"),
        ("/v1/audits/a%00b", {}, "path"),
        ("/v1/artifacts/a%00b", {}, "path"),
        ("/v1/policies/effective", {"model_name": "\x00"}, "'model_name'"),
        ("/v1/canary-sets/%00", {"reveal": "true"}, "path"),
    ],
)
def test_nul_in_path_or_query_is_422_naming_it(client, auth, path, params, needle):
    body = assert_error_body(client.get(path, params=params, headers=auth), 422, needle, "NUL")
    assert body["errors"][0]["type"] == "nul"


@pytest.mark.parametrize("path", ["/v1/audits", "/v1/artifacts"])
def test_offset_beyond_64_bits_is_422(client, auth, path):
    response = client.get(path, params={"offset": 2**63}, headers=auth)
    assert_error_body(response, 422, "query.offset")


def test_dp_sgd_epochs_1e308_is_422(client, auth):
    spec = {
        "model": {"name": "m"},
        **SPEC_IDS,
        "dp_claim": {"dp_sgd": {"noise_multiplier": 1.0, "sample_rate": 0.01, "epochs": 1e308}},
    }
    body = assert_error_body(client.post("/v1/audits", json=spec, headers=auth), 422, "epochs")
    assert any("epochs" in e["loc"] for e in body["errors"])


def test_deeply_nested_json_body_is_422(client, auth):
    depth = 100_000
    nested = '{"model": {"name": "m"}, "extra": ' + "[" * depth + "]" * depth + "}"
    response = client.post(
        "/v1/audits",
        content=nested,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_error_body(response, 422)


@pytest.mark.parametrize("label", ["²", "9" * 5000])
def test_label_that_only_looks_like_a_class_number_is_422(client, auth, uploaded, label):
    """str.isdigit() is true for "²", and int() refuses 5000 digits: both used to be 500s."""
    records = [{"text": f"record {i}", "label": label} for i in range(4)]
    dataset = upload(client, auth, jsonl(records), "dataset", "odd.jsonl")
    assert dataset.status_code == 201, dataset.text
    spec = {"model": {"name": "m"}, **uploaded, "members": dataset.json()["id"]}
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert_error_body(response, 422, "members: labels", "not classes of the model")


def _corrupt_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps({"pad": "x" * 5000, "n": list(range(2000))}))
    data = bytearray(buf.getvalue())
    start = 30 + len("config.json")  # the first entry's data follows its local header
    for i in range(start + 20, start + 60):
        data[i] ^= 0xFF
    return bytes(data)


def test_corrupt_deflate_data_in_a_zip_is_422(client, auth, backend):
    from app.core.config import get_settings

    tmp = get_settings().storage_dir / "tmp"
    before = set(tmp.iterdir())
    response = upload(client, auth, _corrupt_zip(), "model", "model.zip")
    assert_error_body(response, 422, "archive is corrupt")
    assert set(tmp.iterdir()) == before


# -- infrastructure faults -------------------------------------------------------------------


def test_full_disk_during_upload_is_507_and_stores_nothing(client, auth, monkeypatch, backend):
    from app.artifacts.storage import Storage
    from app.core.config import get_settings

    def disk_full(out, chunk: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    storage_dir = get_settings().storage_dir
    files_before = {p for p in storage_dir.rglob("*") if p.is_file()}
    monkeypatch.setattr(Storage, "write_chunk", staticmethod(disk_full))
    response = upload(client, auth, dataset_bytes(20), "dataset", "full.jsonl")
    assert_error_body(response, 507, "disk is full", "nothing was stored")
    assert client.get("/v1/artifacts", headers=auth).json()["items"] == []
    assert {p for p in storage_dir.rglob("*") if p.is_file()} == files_before


def test_database_down_every_authenticated_route_is_503(tmp_path, monkeypatch):
    """PostgreSQL unreachable (nothing listens on the port): JSON 503, not a plain-text 500."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    monkeypatch.setenv("LEAKGATE_ENV", "test")
    monkeypatch.setenv("LEAKGATE_HOME", str(tmp_path))
    monkeypatch.setenv(
        "LEAKGATE_DATABASE_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5499/test?connect_timeout=2",
    )
    reset_caches()
    try:
        client = TestClient(create_app(run_sweeper=False))  # no lifespan: its check needs the DB
        auth = {"Authorization": "Bearer lg_whatever"}
        for method, path, kwargs in (
            ("GET", "/v1/audits", {}),
            ("GET", "/v1/audits/abc", {}),
            ("GET", "/v1/artifacts", {}),
            ("GET", "/v1/policies", {}),
            ("POST", "/v1/webhook-secret", {}),
            ("POST", "/v1/audits", {"json": {"model": {"name": "m"}, **SPEC_IDS}}),
        ):
            response = client.request(method, path, headers=auth, **kwargs)
            assert_error_body(response, 503, "database unavailable")
        client.cookies.set("leakgate_key", "lg_whatever")
        page = client.get("/dashboard")
        assert page.status_code == 503 and "database unavailable" in page.text
        assert page.headers["content-type"].startswith("text/html")
    finally:
        monkeypatch.undo()
        reset_caches()


def test_unexpected_error_is_a_logged_json_500_without_traceback(activate, caplog):
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app(run_sweeper=False)

    def explode() -> None:
        raise RuntimeError("secret internals")

    def recurse() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    app.add_api_route("/explode", explode)
    app.add_api_route("/recurse", recurse)
    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="app.api.errors"):
        response = client.get("/explode")
    body = assert_error_body(response, 500, "internal server error")
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert body["errors"] is None
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)
    assert_error_body(client.get("/recurse"), 422, "nested too deeply")


def test_dashboard_errors_are_html_pages(client, api_key):
    from tests.utils.dashboard import dashboard_post

    assert_error_body(client.get("/dashboard/progress", params={"id": "x"}), 401, "log in")
    assert dashboard_post(client, "/dashboard/login", data={"api_key": api_key}).status_code == 200
    page = client.get("/dashboard/audits/nope")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Audit not found" in page.text
    bad = client.get("/dashboard", params={"limit": 0})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    assert "limit" in bad.text
    far = client.get("/dashboard", params={"offset": 2**63})
    assert far.status_code == 422 and "offset" in far.text
    progress = client.get("/dashboard/progress", params={"id": "x" * 5})
    assert progress.headers["content-type"].startswith("application/json")


def test_nul_in_a_json_body_string_is_422(client, auth, uploaded):
    """JSON may carry \\u0000; PostgreSQL text and jsonb cannot store it."""
    spec = {"model": {"name": "m", "version": "1\x00"}, **uploaded}
    assert_error_body(client.post("/v1/audits", json=spec, headers=auth), 422, "NUL")
    canaries = {
        "task": "text-classification",
        "template": "pin {d4}",
        "count": 2,
        "labels": ["bal\x00ance"],
    }
    assert_error_body(client.post("/v1/canary-sets", json=canaries, headers=auth), 422, "NUL")
    # An escaped backslash before u0000 is six ordinary characters, not a NUL.
    text = '{"model": {"name": "m", "version": "a\\\\u0000"}, "members": "x"}'
    response = client.post(
        "/v1/audits", content=text, headers={**auth, "Content-Type": "application/json"}
    )
    assert "NUL" not in response.json()["detail"]


def _raiser(exc: BaseException):
    def fail() -> None:
        raise exc

    return fail


def test_database_and_disk_errors_map_to_their_statuses(activate):
    """What a service may let through from the driver or the disk, as each route would see it."""
    from fastapi.testclient import TestClient
    from sqlalchemy import exc as sa_exc

    from app.main import create_app

    orig = Exception("driver says no")
    raised = {
        "/integrity": (sa_exc.IntegrityError("INSERT", {}, orig), 409, "conflicts"),
        "/data": (sa_exc.DataError("SELECT", {}, orig), 422, "out of range"),
        "/operational": (sa_exc.OperationalError("SELECT", {}, orig), 503, "database unavailable"),
        "/enospc": (OSError(errno.ENOSPC, "No space left on device"), 507, "disk is full"),
        "/overflow": (OverflowError("int too large to convert"), 422, "too large"),
    }
    app = create_app(run_sweeper=False)
    for path, (exc, _, _) in raised.items():
        app.add_api_route(path, _raiser(exc))
    client = TestClient(app, raise_server_exceptions=False)
    for path, (_, status, needle) in raised.items():
        assert_error_body(client.get(path), status, needle)
    app.add_api_route("/eio", _raiser(OSError(errno.EIO, "I/O error")))
    assert_error_body(client.get("/eio"), 500, "internal server error")


def test_deeply_nested_jsonl_record_is_422(client, auth):
    """Whatever bound the upload checks put on depth, a RecursionError never becomes a 500."""
    depth = 200_000
    line = b'{"text": "x", "label": "a", "meta": ' + b"[" * depth + b"]" * depth + b"}\n"
    response = upload(client, auth, line + dataset_bytes(4), "dataset", "deep.jsonl")
    assert_error_body(response, 422)
