"""Issue 16, API: malformed bodies are 4xx naming the field, never 5xx; bodies are limited and
authenticated before they are read; errors never echo the input; a blank token stops start-up.

The fuzz test drives every operation of the OpenAPI schema with schemathesis (0 server errors
allowed); the byte-level cases send what a schema-driven fuzzer never would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.app import create_app
from fraud_assets.serving.model_source import ModelSource
from fraud_assets.serving.online_features import InMemoryFeatureStore
from fraud_assets.serving.scoring import Scorer
from fraud_assets.serving.settings import ServiceSettings

ORIGIN = dt.date(2018, 4, 1)
TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
LIMIT = 64_000
GOOD = (
    '{"transaction_id": 1, "tx_datetime": "2018-05-01 10:00:00", "customer_id": 4, '
    '"terminal_id": 5, "tx_amount": 12.5}'
)


@pytest.fixture(scope="module")
def model_source() -> ModelSource:
    """A tiny CatBoost model on random data: the API needs *a* model, not a good one."""
    from catboost import CatBoostClassifier, Pool

    rng = np.random.default_rng(0)
    x = rng.random((300, len(FEATURE_COLUMNS)))
    y = (x[:, 0] > 0.8).astype(int)
    model = CatBoostClassifier(iterations=5, depth=2, verbose=False, thread_count=1)
    model.fit(Pool(x, y, feature_names=list(FEATURE_COLUMNS)))
    return ModelSource.fixed(model, threshold=0.5, version=1)


def make_app(model_source: ModelSource, **settings: object):
    scorer = Scorer(
        InMemoryFeatureStore(), model_source, pseudonymizer=Pseudonymizer(b"k"), origin=ORIGIN
    )
    options: dict[str, object] = {
        "origin_date": ORIGIN,
        "mlflow_tracking_uri": "sqlite:///unused.db",
        "api_token": TOKEN,
        "feedback_token": "labels-token",
        "max_body_bytes": LIMIT,
    }
    config = ServiceSettings(**(options | settings))
    return create_app(scorer, settings=config)


@pytest.fixture(scope="module")
def client(model_source: ModelSource):
    with TestClient(make_app(model_source)) as c:
        yield c


def test_a_well_formed_request_scores(client):
    r = client.post("/v1/score", content=GOOD, headers=AUTH)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (GOOD.replace("12.5", "NaN"), ["body", "tx_amount"]),
        (GOOD.replace("12.5", "Infinity"), ["body", "tx_amount"]),
        (GOOD.replace("12.5", "-Infinity"), ["body", "tx_amount"]),
        (GOOD.replace("12.5", "1e400"), ["body", "tx_amount"]),
        (GOOD.replace('"transaction_id": 1', '"transaction_id": NaN'), ["body", "transaction_id"]),
        (GOOD.replace('"customer_id": 4', '"customer_id": 1e400'), ["body", "customer_id"]),
        (GOOD.replace("2018-05-01 10:00:00", "\\ud800"), ["body", "tx_datetime"]),
        (GOOD.replace('"terminal_id": 5', '"terminal_id": 5, "terminal_id": 6'), None),
        (GOOD.replace('"customer_id": 4', '"customer_id": 10000000000000000000000'), None),
    ],
    ids=[
        "nan",
        "infinity",
        "minus-infinity",
        "1e400",
        "nan-id",
        "overflowing-id",
        "lone-surrogate",
        "duplicate-key",
        "huge-integer",
    ],
)
def test_malformed_json_values_are_422_naming_the_field(client, body, loc):
    r = client.post("/v1/score", content=body.encode(), headers=AUTH)
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    if loc is None:  # duplicate key / out-of-range integer: named by the key
        assert any(loc[-1] in ("terminal_id", "customer_id") for loc in locs), locs
    else:
        assert loc in locs, locs


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe not utf-8",
        b'{"transaction_id": 1,',
        b"[" * 5000 + b"]" * 5000,
        b'{"a": ' * 100 + b"1" + b"}" * 100,
        b"",
        b"null",
        b'"just a string"',
        GOOD.replace("tx_amount", "tx_amount\\udfff").encode(),
    ],
    ids=["not-utf8", "truncated", "deep-list", "deep-object", "empty", "null", "string", "bad-key"],
)
def test_bodies_that_are_not_a_transaction_are_4xx(client, body):
    for path in ("/v1/score", "/v1/score/batch", "/v1/features"):
        r = client.post(path, content=body, headers=AUTH)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        assert r.json()["detail"]


def test_a_batch_item_error_names_the_item(client):
    items = [json.loads(GOOD), {**json.loads(GOOD), "transaction_id": 2}]
    raw = json.dumps({"transactions": items}).replace('"tx_amount": 12.5}]', '"tx_amount": NaN}]')
    r = client.post("/v1/score/batch", content=raw, headers=AUTH)
    assert r.status_code == 422
    assert ["body", "transactions", 1, "tx_amount"] in [e["loc"] for e in r.json()["detail"]]


def test_error_responses_do_not_echo_large_inputs(client):
    big = "x" * 50_000  # below the body limit
    body = GOOD.replace("2018-05-01 10:00:00", big)
    r = client.post("/v1/score", content=body, headers=AUTH)
    assert r.status_code == 422
    assert len(r.content) < 2_000 and "xxxxxxxxxx" not in r.text
    many = {"transactions": [{"transaction_id": i, "tx_datetime": "no"} for i in range(1000)]}
    r = client.post("/v1/score/batch", content=json.dumps(many), headers=AUTH)
    assert r.status_code == 422 and len(r.content) < 10_000


def test_a_body_over_the_limit_is_413(client):
    body = GOOD.replace("2018-05-01 10:00:00", "x" * LIMIT)
    r = client.post("/v1/score", content=body, headers=AUTH)
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted while it streams
        yield GOOD[:-1].encode() + b', "pad": "'
        for _ in range(10):
            yield b"y" * 10_000
        yield b'"}'

    r = client.post("/v1/score", content=chunks(), headers=AUTH)
    assert r.status_code == 413


def _call(app, path: str, headers: list[tuple[bytes, bytes]], size: int) -> tuple[int, int]:
    """Raw ASGI call: (status, body chunks the app read). The body is offered in 1 MB chunks."""
    reads = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        return {
            "type": "http.request",
            "body": b"x" * 1_000_000,
            "more_body": reads * 1_000_000 < size,
        }

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], reads


def test_authentication_happens_before_the_body_is_read(model_source):
    app = make_app(model_source, max_body_bytes=10**9)
    size = 200_000_000  # a 200 MB unauthenticated body
    headers = [(b"content-type", b"application/json"), (b"content-length", str(size).encode())]
    status, reads = _call(app, "/v1/score", headers, size)
    assert status == 401 and reads == 0
    wrong_role = [*headers, (b"authorization", b"Bearer labels-token")]
    status, reads = _call(app, "/v1/score", wrong_role, size)
    assert status == 403 and reads == 0


def test_a_declared_oversize_body_is_refused_unread(model_source):
    app = make_app(model_source)
    size = 200_000_000
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(size).encode()),
        (b"authorization", f"Bearer {TOKEN}".encode()),
    ]
    status, reads = _call(app, "/v1/score", headers, size)
    assert status == 413 and reads == 0


@pytest.mark.parametrize("variable", ["FRAUD_API_TOKEN", "FRAUD_FEEDBACK_TOKEN"])
@pytest.mark.parametrize("blank", ["", "   ", " padded "])
def test_a_blank_token_is_refused_at_start_up(monkeypatch, variable, blank):
    monkeypatch.setenv(variable, blank)
    with pytest.raises(ValidationError, match="blank"):
        ServiceSettings()


def test_the_same_token_for_both_roles_is_refused(monkeypatch):
    monkeypatch.setenv("FRAUD_API_TOKEN", "one")
    monkeypatch.setenv("FRAUD_FEEDBACK_TOKEN", "one")
    with pytest.raises(ValidationError, match="differ"):
        ServiceSettings()


def test_fraud_serve_refuses_a_blank_token(monkeypatch):
    from typer.testing import CliRunner

    from fraud_assets.cli import app

    monkeypatch.setenv("FRAUD_API_TOKEN", " ")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code != 0
    assert "FRAUD_" in result.output and "blank" in result.output


@pytest.mark.slow
def test_openapi_fuzz_finds_no_server_error(model_source):
    import hypothesis
    import schemathesis
    from schemathesis.checks import not_a_server_error

    app = make_app(model_source)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    def fuzz(operation, token: str) -> None:  # noqa: ANN001 - a schemathesis APIOperation
        @hypothesis.settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case) -> None:  # noqa: ANN001
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
            )

        check()

    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        fuzz(operation, "labels-token" if operation.path == "/v1/feedback" else TOKEN)
    assert operations == 7


def test_the_time_guard_answers_422_through_the_micro_batched_score(model_source):
    with TestClient(make_app(model_source)) as client:
        first = json.loads(GOOD)
        assert client.post("/v1/score", json=first, headers=AUTH).status_code == 200
        later = {**first, "transaction_id": 2, "tx_datetime": "2018-05-04 10:00:00"}
        r = client.post("/v1/score", json=later, headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "tx_datetime"]
        ok = {**first, "transaction_id": 3, "tx_datetime": "2018-05-01 11:00:00"}
        assert client.post("/v1/score", json=ok, headers=AUTH).status_code == 200
