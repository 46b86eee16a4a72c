"""The scoring REST API: a real small CatBoost model in a temp SQLite MLflow registry.

Two models are trained once per module on 12 simulated days and registered as v1 (champion)
and v2 (challenger). Redis tests use the machine's server under a unique key prefix, removed
afterwards (never FLUSHALL).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import redis
from fastapi.testclient import TestClient

from fraud_assets.features.polars_engine import compute_features
from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.modeling.registry import ModelRegistry
from fraud_assets.modeling.training import TrainedModel, TrainingConfig, train_model
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.app import create_app, redis_client
from fraud_assets.serving.labels import LabelLog
from fraud_assets.serving.model_source import LoadedModel, ModelSource
from fraud_assets.serving.online_features import (
    InMemoryFeatureStore,
    OnlineFeatureStore,
    RedisFeatureStore,
    Transaction,
)
from fraud_assets.serving.rules import RuleSet
from fraud_assets.serving.scoring import Scorer
from fraud_assets.serving.settings import ServiceSettings
from fraud_assets.simulation import SimulationParams, TransactionSimulator

pytestmark = pytest.mark.slow

ORIGIN = dt.date(2018, 4, 1)
DAYS = 12
CONFIG = TrainingConfig(window_days=7, validation_days=3, delay_days=2, iterations=30)
KEY = b"serving-test-key"
TOKEN = "s3cret-token"
REDIS_URL = "redis://127.0.0.1:6379/0"
WHEN = dt.datetime(2018, 4, 20, 12, 0, 0)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module", autouse=True)
def _no_files_in_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("cwd"))
        yield


@pytest.fixture(scope="module")
def trained() -> tuple[TrainedModel, TrainedModel]:
    params = SimulationParams(customers=300, terminals=400, days=DAYS, start_date=ORIGIN, seed=3)
    frame = pl.concat([day.frame for day in TransactionSimulator(params).days()])
    features = compute_features(frame.drop("base_amount"))
    end = ORIGIN + dt.timedelta(days=DAYS - 1)
    first = train_model(features, end, CONFIG)
    second = train_model(features, end, dataclasses.replace(CONFIG, seed=1, depth=4))
    return first, second


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def registry(sqlite_uri: str, trained) -> ModelRegistry:
    """v1 champion, v2 challenger. A test that moves the champion puts v1 back."""
    reg = ModelRegistry(sqlite_uri, model_name="fraud-serving")
    v1 = reg.log_challenger(trained[0])
    reg.promote(v1.version, "test setup")
    reg.log_challenger(trained[1])
    return reg


@pytest.fixture
def source(registry: ModelRegistry) -> ModelSource:
    src = ModelSource(registry)
    assert src.refresh() and src.current.version == 1
    return src


def make_app(
    source: ModelSource,
    *,
    token: str | None = None,
    store: OnlineFeatureStore | None = None,
    rules: RuleSet | None = None,
    poll: float = 60.0,
):
    scorer = Scorer(
        store if store is not None else InMemoryFeatureStore(),
        source,
        rules or RuleSet(),
        Pseudonymizer(KEY),
        ORIGIN,
    )
    settings = ServiceSettings(
        api_token=token,
        model_poll_seconds=poll,
        origin_date=ORIGIN,
        mlflow_tracking_uri="sqlite:///unused.db",
    )
    return create_app(scorer, settings=settings)


def tx(
    tid: int,
    customer: int = 11,
    terminal: int = 22,
    amount: float = 42.5,
    when: dt.datetime = WHEN,
    **extra,
) -> dict:
    return {
        "transaction_id": tid,
        "tx_datetime": when.isoformat(sep=" "),
        "customer_id": customer,
        "terminal_id": terminal,
        "tx_amount": amount,
        **extra,
    }


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pseudonymised(raw: dict) -> Transaction:
    p = Pseudonymizer(KEY)
    when = dt.datetime.fromisoformat(raw["tx_datetime"])
    return Transaction(
        transaction_id=raw["transaction_id"],
        tx_datetime=when,
        customer_id=p.one("customer", raw["customer_id"]),
        terminal_id=p.one("terminal", raw["terminal_id"]),
        tx_amount=raw["tx_amount"],
        tx_time_seconds=int((when - dt.datetime.combine(ORIGIN, dt.time())).total_seconds()),
    )


# ------------------------------------------------------------------------------- scoring


def test_score_one_and_batch_with_the_champion(source, registry, trained):
    with TestClient(make_app(source)) as client:
        # Some history for the card, then the transaction under test.
        for i in range(3):
            r = client.post("/v1/score", json=tx(100 + i, when=WHEN - dt.timedelta(hours=5 - i)))
            assert r.status_code == 200, r.text
        raw = tx(200, amount=180.0)
        r = client.post("/v1/score", json=raw)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["transaction_id"] == 200
        assert body["model_version"] == 1
        assert body["threshold"] == registry.version(1).threshold
        assert body["decided_by"] == "model"
        review = registry.version(1).review_threshold
        assert review is not None and review <= body["threshold"]  # trained with a review band
        assert body["review_threshold"] == review
        p = body["fraud_probability"]
        assert body["decision"] == (
            "block" if p >= body["threshold"] else "review" if p >= review else "allow"
        )
        assert body["latency_ms"] > 0
        assert "reasons" not in body

        # The same probability as the model on exactly the batch features of that history.
        reference = InMemoryFeatureStore()
        for i in range(3):
            reference.features_for(
                pseudonymised(tx(100 + i, when=WHEN - dt.timedelta(hours=5 - i)))
            )
        feats = reference.features_for(pseudonymised(raw))
        assert feats["customer_nb_tx_1d"] == 4
        x = np.array([[feats[c] for c in FEATURE_COLUMNS]], dtype=np.float64)
        expected = trained[0].model.predict_proba(x)[0, 1]
        assert body["fraud_probability"] == pytest.approx(expected, rel=1e-9)

        explained = client.post("/v1/score?explain=true", json=tx(201)).json()
        assert len(explained["reasons"]) == 3
        assert all(reason["feature"] in FEATURE_COLUMNS for reason in explained["reasons"])
        sizes = [abs(reason["contribution"]) for reason in explained["reasons"]]
        assert sizes == sorted(sizes, reverse=True)

        # Batch: one model call for all rows, results in request order (not time order).
        loaded = source.current
        calls: list[np.ndarray] = []
        original = LoadedModel.probabilities

        def counting(self, x):  # noqa: ANN001, ANN202
            calls.append(x)
            return original(self, x)

        LoadedModel.probabilities = counting
        try:
            items = [
                tx(300 + i, customer=50 + i, when=WHEN - dt.timedelta(minutes=i)) for i in range(5)
            ]
            r = client.post("/v1/score/batch", json={"transactions": items})
        finally:
            LoadedModel.probabilities = original
        assert r.status_code == 200, r.text
        batch = r.json()
        assert [len(x) for x in calls] == [5]
        expected = loaded.model.predict_proba(calls[0])[:, 1]  # rows in request order
        assert [res["fraud_probability"] for res in batch["results"]] == pytest.approx(
            expected.tolist(), rel=1e-9
        )
        assert [res["transaction_id"] for res in batch["results"]] == [300, 301, 302, 303, 304]
        assert batch["model_version"] == 1
        assert all(res["decided_by"] == "model" for res in batch["results"])
        assert all("reasons" not in res for res in batch["results"])

        explained = client.post(
            "/v1/score/batch?explain=true", json={"transactions": items[:2]}
        ).json()
        assert all(len(res["reasons"]) == 3 for res in explained["results"])


def test_the_same_transaction_scored_twice_is_counted_once(source):
    store = InMemoryFeatureStore()
    with TestClient(make_app(source, store=store)) as client:
        first = client.post("/v1/score", json=tx(1, customer=7)).json()
        again = client.post("/v1/score", json=tx(1, customer=7)).json()
        assert again["fraud_probability"] == first["fraud_probability"]
        # A batch holding a retry of it, too.
        r = client.post("/v1/score/batch", json={"transactions": [tx(1, customer=7)] * 2})
        assert r.status_code == 200
    later = pseudonymised(tx(2, customer=7, when=WHEN + dt.timedelta(minutes=1)))
    assert store.features_for(later)["customer_nb_tx_1d"] == 2  # tx 1 once, plus tx 2


def test_rules_decide_before_the_model_and_say_so():
    rules = RuleSet(blocked_customers={666}, blocked_terminals={777}, max_amount=5000.0)
    empty = ModelSource(registry=None)  # no model at all: only the rules can decide
    with TestClient(make_app(empty, rules=rules)) as client:
        for raw, rule in (
            (tx(1, customer=666), "rule:blocked_customer"),
            (tx(2, terminal=777), "rule:blocked_terminal"),
            (tx(3, amount=5000.01), "rule:max_amount"),
        ):
            r = client.post("/v1/score", json=raw)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["decided_by"] == rule and body["decision"] == "block"
            assert body["fraud_probability"] is None and body["rule_reason"]
        r = client.post("/v1/score", json=tx(4))
        assert r.status_code == 503 and r.json()["reason"] == "model_not_ready"


def test_rules_win_over_a_loaded_model(source):
    rules = RuleSet(blocked_customers={666})
    with TestClient(make_app(source, rules=rules)) as client:
        r = client.post("/v1/score/batch", json={"transactions": [tx(1), tx(2, customer=666)]})
        first, second = r.json()["results"]
        assert first["decided_by"] == "model"
        assert second["decided_by"] == "rule:blocked_customer" and second["decision"] == "block"
        assert second["fraud_probability"] is not None  # still scored, for monitoring


def test_feedback_feeds_the_terminal_risk(source, tmp_path):
    store = InMemoryFeatureStore()
    app = make_app(source, store=store)
    app.state.scorer.label_log = LabelLog(tmp_path / "labels")
    with TestClient(app) as client:
        for tid, minutes in ((10, 0), (11, 1)):
            when = WHEN + dt.timedelta(minutes=minutes)
            assert client.post("/v1/score", json=tx(tid, terminal=5, when=when)).status_code == 200
        r = client.post(
            "/v1/feedback",
            json={
                "transaction_id": 10,
                "terminal_id": 5,
                "fraud": True,
                "tx_datetime": WHEN.isoformat(),
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "recorded"
        # Terminal and time are optional: the platform knows them from the scored transaction.
        r = client.post("/v1/feedback", json={"transaction_id": 11, "fraud": False})
        assert r.status_code == 200, r.text
        assert r.json()["tx_time_seconds"] == pseudonymised(tx(11, when=WHEN)).tx_time_seconds + 60
    later = pseudonymised(
        tx(12, customer=99, terminal=5, when=WHEN + dt.timedelta(days=7, hours=1))
    )
    for i in range(1, 8):  # the time guard takes the store's clock a day at a time
        store.features_for(pseudonymised(tx(100 + i, customer=98, terminal=6, when=WHEN + i * DAY)))
    feats = store.features_for(later)
    assert feats["terminal_nb_tx_1d"] == 2 and feats["terminal_risk_1d"] == 0.5
    logged = LabelLog(tmp_path / "labels").read()
    assert [(r["transaction_id"], r["fraud"]) for r in logged] == [(10, True), (11, False)]
    assert all(r["terminal_id"] == pseudonymised(tx(10, terminal=5)).terminal_id for r in logged)


# ------------------------------------------------------------------------------- auth, input


def test_bearer_token_is_required_on_v1_when_configured(source):
    with TestClient(make_app(source, token=TOKEN)) as client:
        assert client.post("/v1/score", json=tx(1)).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert client.post("/v1/score", json=tx(1), headers=bad).status_code == 401
        assert client.post("/v1/score/batch", json={"transactions": [tx(1)]}).status_code == 401
        r = client.post("/v1/score", json=tx(1), headers={"Authorization": "Basic eDp5"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        # Labelling is its own role: closed while FRAUD_FEEDBACK_TOKEN is not configured.
        r = client.post(
            "/v1/feedback",
            json={"transaction_id": 1, "terminal_id": 1, "fraud": True, "tx_time_seconds": 5},
        )
        assert r.status_code == 403 and r.json()["reason"] == "role_not_configured"
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/v1/score", json=tx(1), headers=good).status_code == 200
        for path in ("/healthz", "/readyz", "/metrics"):  # probes and scrapes stay open
            assert client.get(path).status_code == 200


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        (tx(1, amount=-3.0), ["body", "tx_amount"]),
        (tx(1, amount=0), ["body", "tx_amount"]),
        (tx(-1), ["body", "transaction_id"]),
        (tx(1, customer=-5), ["body", "customer_id"]),
        (tx(1, terminal=-1), ["body", "terminal_id"]),
        ({**tx(1), "tx_datetime": "yesterday-ish"}, ["body", "tx_datetime"]),
        ({**tx(1), "tx_datetime": "2017-01-01 00:00:00"}, ["body", "tx_datetime"]),  # < origin
        (tx(1, tx_time_seconds=123), ["body", "tx_time_seconds"]),  # disagrees with datetime
        ({k: v for k, v in tx(1).items() if k != "customer_id"}, ["body", "customer_id"]),
    ],
)
def test_bad_input_is_422_naming_the_field(source, payload, loc):
    with TestClient(make_app(source)) as client:
        r = client.post("/v1/score", json=payload)
        assert r.status_code == 422, r.text
        assert loc in [e["loc"] for e in r.json()["detail"]], r.json()


def test_bad_batch_item_and_feedback_are_422_naming_the_field(source):
    with TestClient(make_app(source)) as client:
        items = [tx(1), tx(2, amount=-1.0)]
        r = client.post("/v1/score/batch", json={"transactions": items})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "transactions", 1, "tx_amount"]
        # Origin-dependent checks happen in the scorer: still located in the batch.
        items = [tx(1), {**tx(2), "tx_datetime": "2001-01-01T00:00:00"}]
        r = client.post("/v1/score/batch", json={"transactions": items})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "transactions", 1, "tx_datetime"]
        r = client.post(
            "/v1/feedback",
            json={"transaction_id": 1, "fraud": True, "tx_datetime": "2001-01-01T00:00:00"},
        )
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "tx_datetime"]
        r = client.post("/v1/feedback", json={"transaction_id": 1, "fraud": "maybe"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "fraud"]


# ------------------------------------------------------------------------------- models


def test_readyz_is_503_until_a_champion_exists(sqlite_uri, trained):
    empty = ModelRegistry(sqlite_uri, model_name=f"fraud-empty-{uuid.uuid4().hex[:6]}")
    source = ModelSource(empty)
    with TestClient(make_app(source, poll=0.2)) as client:
        wait_for(lambda: source.last_check is not None, what="the first poll")
        r = client.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "not ready" and "champion" in r.json()["detail"]
        assert client.post("/v1/score", json=tx(1)).status_code == 503
        assert client.get("/healthz").status_code == 200

        info = empty.log_challenger(trained[0])
        empty.promote(info.version, "first champion")
        wait_for(lambda: client.get("/readyz").status_code == 200, what="the champion to load")
        assert client.get("/readyz").json()["model_version"] == 1
        r = client.post("/v1/score", json=tx(1))
        assert r.status_code == 200 and r.json()["model_version"] == 1


def test_hot_swap_under_load_loses_no_request(source, registry):
    failures: list[str] = []
    versions: list[int] = []
    stop = threading.Event()
    with TestClient(make_app(source, poll=0.1)) as client:

        def fire() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                payload = tx(
                    10_000 + i, customer=i % 17, terminal=i % 5, when=WHEN + dt.timedelta(seconds=i)
                )
                try:
                    if i % 3 == 0:
                        r = client.post("/v1/score/batch", json={"transactions": [payload]})
                        body = r.json()["results"][0] if r.status_code == 200 else None
                    else:
                        r = client.post("/v1/score", json=payload)
                        body = r.json() if r.status_code == 200 else None
                except Exception as e:  # noqa: BLE001
                    failures.append(repr(e))
                    continue
                if body is None:
                    failures.append(f"{r.status_code}: {r.text}")
                else:
                    versions.append(body["model_version"])

        thread = threading.Thread(target=fire)
        thread.start()
        try:
            wait_for(lambda: len(versions) >= 20, what="traffic on v1")
            registry.promote(2, "hot-swap test")
            wait_for(lambda: 2 in versions, what="v2 in responses")
            seen = len(versions)
            wait_for(lambda: len(versions) >= seen + 20, what="traffic on v2")
        finally:
            stop.set()
            thread.join(30)
            registry.promote(1, "restore after hot-swap test")
        metrics = client.get("/metrics").text

    assert failures == []
    assert versions[0] == 1 and versions[-1] == 2
    switch = versions.index(2)
    assert set(versions[:switch]) == {1} and set(versions[switch:]) == {2}  # one clean switch
    assert "fraud_model_version 2.0" in metrics


def test_registry_unreachable_keeps_serving_the_last_model(source, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with TestClient(make_app(source, poll=0.1)) as client:
        assert client.get("/readyz").json()["registry"] == "reachable"
        # The tracking server goes away: point the source at a port nobody listens on.
        source.registry = ModelRegistry(
            f"http://127.0.0.1:{free_port()}", model_name="fraud-serving"
        )
        wait_for(lambda: client.get("/readyz").json()["registry"] == "unreachable", what="failure")
        r = client.get("/readyz")
        assert r.status_code == 200
        body = r.json()
        assert body["model_version"] == 1 and body["registry_error"]
        r = client.post("/v1/score", json=tx(1))
        assert r.status_code == 200 and r.json()["model_version"] == 1
        metrics = client.get("/metrics").text
        assert "fraud_model_registry_unreachable 1.0" in metrics
        assert "fraud_model_version 1.0" in metrics


def test_a_vanished_champion_alias_keeps_the_last_model(source, sqlite_uri):
    """(A deleted SQLite file is no test of this: MLflow caches the store per URI, and its pooled
    connection keeps reading the unlinked file. A missing alias is the realistic case.)"""
    source.registry = ModelRegistry(sqlite_uri, model_name=f"fraud-gone-{uuid.uuid4().hex[:6]}")
    assert not source.refresh()
    status = source.status()
    assert status.loaded and status.version == 1
    assert "no version with alias 'champion'" in status.last_error


# ------------------------------------------------------------------------------- operations


def test_metrics_expose_the_counters(source):
    with TestClient(make_app(source, rules=RuleSet(max_amount=1000.0))) as client:
        client.post("/v1/score", json=tx(1))
        client.post("/v1/score", json=tx(2, amount=2000.0))
        client.post("/v1/score", json=tx(3, amount=-1.0))
        client.post("/v1/score/batch", json={"transactions": [tx(4), tx(5)]})
        text = client.get("/metrics").text
    assert 'fraud_api_requests_total{endpoint="/v1/score",method="POST",status="200"} 2.0' in text
    assert 'fraud_api_requests_total{endpoint="/v1/score",method="POST",status="422"} 1.0' in text
    assert (
        'fraud_api_requests_total{endpoint="/v1/score/batch",method="POST",status="200"} 1.0'
        in text
    )
    assert 'fraud_api_request_duration_seconds_bucket{endpoint="/v1/score",le="0.5"}' in text
    assert 'fraud_decisions_total{decided_by="rule:max_amount",decision="block"} 1.0' in text
    model_decisions = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fraud_decisions_total{") and 'decided_by="model"' in line
    ]
    assert sum(model_decisions) == 3  # tx 1, 4 and 5
    assert "fraud_model_version 1.0" in text
    assert 'fraud_model_info{model="fraud-serving",threshold=' in text
    assert "fraud_feature_store_errors_total 0.0" in text
    assert "fraud_model_registry_unreachable 0.0" in text
    # Single requests go through the micro-batcher: two groups of one (sequential requests).
    assert "fraud_api_micro_batch_size_count 2.0" in text
    assert "fraud_api_micro_batch_size_sum 2.0" in text

    # The Grafana dashboard queries only series that the service exports.
    dashboard = json.loads(
        (Path(__file__).parents[1] / "deploy/grafana/fraud-scoring-dashboard.json").read_text()
    )
    queried = {
        re.sub(r"_(bucket|sum|count|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"\bfraud_[a-z0-9_]+", target["expr"])
    }
    exported = {
        re.sub(r"_(bucket|sum|count|total|created)$", "", line.split()[2])
        for line in text.splitlines()
        if line.startswith("# TYPE ")
    }
    assert queried and queried <= exported, queried - exported


def test_feature_store_down_is_503_and_counted(source):
    dead = redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    with TestClient(make_app(source, store=RedisFeatureStore(dead, prefix="never:"))) as client:
        started = time.monotonic()
        r = client.post("/v1/score", json=tx(1))
        assert r.status_code == 503
        assert r.json()["reason"] == "feature_store_unavailable"
        assert "feature store" in r.json()["detail"]
        r = client.post(
            "/v1/feedback",
            json={"transaction_id": 1, "terminal_id": 1, "fraud": True, "tx_time_seconds": 10},
        )
        assert r.status_code == 503
        assert client.get("/readyz").status_code == 200  # the model is fine
        assert "fraud_feature_store_errors_total 2.0" in client.get("/metrics").text
    assert time.monotonic() - started < 5  # fails fast: no multi-second client retries


@pytest.fixture
def redis_store() -> Iterator[RedisFeatureStore]:
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisFeatureStore(client, prefix=f"test-serving:{uuid.uuid4().hex}:")
    try:
        yield store
    finally:
        store.clear()
        client.close()


def test_redis_store_variant_scores_idempotently(source, redis_store):
    with TestClient(make_app(source, store=redis_store)) as client:
        first = client.post("/v1/score", json=tx(1, customer=3)).json()
        again = client.post("/v1/score", json=tx(1, customer=3)).json()
        assert first["model_version"] == 1
        assert again["fraud_probability"] == first["fraud_probability"]
        r = client.post(
            "/v1/feedback",
            json={
                "transaction_id": 1,
                "terminal_id": 22,
                "fraud": True,
                "tx_datetime": WHEN.isoformat(),
            },
        )
        assert r.status_code == 200
    customer_key = redis_store._customer_key(Pseudonymizer(KEY).one("customer", 3))
    assert redis_store.redis.zcard(customer_key) == 1
    keys = {k.decode() for k in redis_store.redis.scan_iter(match=redis_store.prefix + "*")}
    # one customer, terminal tx + fraud sets, the id index (versions, own ratios, times) and
    # the clock
    prefix = redis_store.prefix
    shared = {f"{prefix}{k}" for k in ("tx:versions", "tx:ratios", "tx:times", "clock")}
    assert len(keys) == 7 and shared <= keys, keys


def test_openapi_fuzz_finds_no_server_error(source):
    import hypothesis
    import schemathesis
    from schemathesis.checks import not_a_server_error

    app = make_app(source, token=TOKEN)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    operations, calls = 0, 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @hypothesis.settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        check()
    assert operations == 7
    assert 0 < calls <= operations * 25  # bounded work: at most 25 generated cases per operation


# ------------------------------------------------------------------------------- packaging


def test_the_service_does_not_import_dagster():
    code = (
        "import fraud_assets.serving.app, fraud_assets.serving.cli, sys; "
        "assert 'dagster' not in sys.modules, 'dagster imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_serve_command_help_and_worker_guard(monkeypatch):
    import typer
    from typer.testing import CliRunner

    from fraud_assets.serving.cli import serve

    app = typer.Typer()
    app.command("serve")(serve)
    app.command("noop")(lambda: None)  # two commands: `serve` stays a subcommand
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--host", "--port", "--tls-certfile", "--tls-keyfile", "--workers"):
        assert option in result.output
    monkeypatch.delenv("FRAUD_REDIS_URL", raising=False)
    result = runner.invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code != 0 and "FRAUD_REDIS_URL" in result.output
