"""Redis stopping and restarting under the running scoring service.

The service runs on a Redis online feature store (the production client of
`fraud_assets.serving.app.redis_client`: bounded timeouts, one quick retry) against a SECOND,
throw-away `redis-server` this test starts on a free port, so the machine's Redis is never
touched. While a client thread keeps scoring:

  Redis up       -> 200
  Redis killed   -> 503 {"reason": "feature_store_unavailable"} with Retry-After, quickly (no
                    hang, no 500), fraud_feature_store_errors_total counts them; /healthz and
                    /readyz stay 200 (the process and the model are fine)
  Redis back     -> 200 again, on the same service object: it recovers by itself (redis-py
                    reconnects on the next call), no restart.

The restarted Redis is empty (--save ""), so card histories start afresh: the documented
consequence of losing a non-persistent feature store.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from catboost import CatBoostClassifier
from fastapi.testclient import TestClient

from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.app import create_app, redis_client
from fraud_assets.serving.model_source import ModelSource
from fraud_assets.serving.online_features import RedisFeatureStore
from fraud_assets.serving.rules import RuleSet
from fraud_assets.serving.scoring import Scorer
from fraud_assets.serving.settings import ServiceSettings

ORIGIN = dt.date(2018, 4, 1)
WHEN = dt.datetime(2018, 4, 20, 12, 0, 0)
TOKEN = "outage-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = [
    pytest.mark.outage,
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="redis-server is not installed"
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class ThrowAwayRedis:
    """A redis-server of our own on `port`, started and killed by this test only."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.folder),
        ]  # fmt: skip
        log = (self.folder / "redis.log").open("a")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.2)

        def answers() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
            try:
                return bool(probe.ping())
            except redis.RedisError:
                return False

        wait_for(answers, 10, f"redis-server on port {self.port}")
        probe.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: an abrupt failure, not a graceful shutdown
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowAwayRedis]:
    server = ThrowAwayRedis(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def source() -> ModelSource:
    """A real (tiny) CatBoost model over the serving features; no registry needed."""
    rng = np.random.default_rng(0)
    x = rng.random((400, len(FEATURE_COLUMNS)))
    y = (x[:, 2] + 0.3 * rng.random(400) > 0.9).astype(int)
    model = CatBoostClassifier(
        iterations=20, depth=3, verbose=False, thread_count=1, allow_writing_files=False
    )
    model.fit(x, y)
    model.set_feature_names(list(FEATURE_COLUMNS))
    return ModelSource.fixed(model, threshold=0.5, version=1)


def make_app(source: ModelSource, port: int):
    client = redis_client(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.3)
    store = RedisFeatureStore(client, prefix="outage:")
    scorer = Scorer(store, source, RuleSet(), Pseudonymizer(b"outage-key"), ORIGIN)
    settings = ServiceSettings(
        api_token=TOKEN, origin_date=ORIGIN, mlflow_tracking_uri="sqlite:///unused.db"
    )
    return create_app(scorer, settings=settings)


def tx(tid: int) -> dict:
    return {
        "transaction_id": tid,
        "tx_datetime": (WHEN + dt.timedelta(seconds=tid)).isoformat(sep=" "),
        "customer_id": tid % 7,
        "terminal_id": tid % 5,
        "tx_amount": 20.0 + tid % 50,
    }


def feature_store_errors(client: TestClient) -> float:
    text = client.get("/metrics").text
    found = re.search(r"^fraud_feature_store_errors_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


class Traffic(threading.Thread):
    """Scores continuously, recording (phase, status, reason, seconds) of every request."""

    def __init__(self, client: TestClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.phase = "up"
        self.log: list[tuple[str, int, str | None, float]] = []
        self.stopping = threading.Event()
        self.next_id = 10_000

    def run(self) -> None:
        while not self.stopping.is_set():
            self.next_id += 1
            phase = self.phase
            started = time.perf_counter()
            r = self.client.post("/v1/score", json=tx(self.next_id), headers=AUTH)
            reason = r.json().get("reason") if r.status_code != 200 else None
            if self.phase != phase:  # Redis was killed or restarted while this one was in flight
                phase = "transition"
            self.log.append((phase, r.status_code, reason, time.perf_counter() - started))
            time.sleep(0.01)

    def of(self, phase: str) -> list[tuple[str, int, str | None, float]]:
        return [entry for entry in self.log if entry[0] == phase]


def test_redis_outage_gives_503_and_the_service_recovers_by_itself(source, throwaway_redis):
    with TestClient(make_app(source, throwaway_redis.port)) as client:
        # 1. Redis up: scoring works, features are recorded in our Redis.
        for i in range(1, 4):
            r = client.post("/v1/score", json=tx(i), headers=AUTH)
            assert r.status_code == 200, r.text
            assert r.json()["decided_by"] == "model"
        probe = redis.Redis(port=throwaway_redis.port)
        assert list(probe.scan_iter(match="outage:*")), "nothing was written to the test Redis"
        probe.close()

        traffic = Traffic(client)
        traffic.start()
        try:
            wait_for(lambda: len(traffic.of("up")) >= 20, 20, "traffic while Redis is up")

            # 2. Kill Redis mid-run.
            traffic.phase = "down"
            throwaway_redis.kill()
            wait_for(lambda: len(traffic.of("down")) >= 20, 30, "traffic while Redis is down")

            r = client.post("/v1/score", json=tx(5), headers=AUTH)
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["reason"] == "feature_store_unavailable"
            assert "online feature store unavailable" in body["detail"]
            assert "retry" in body["detail"]
            assert r.headers["Retry-After"] == "1"
            batch = client.post(
                "/v1/score/batch", json={"transactions": [tx(6), tx(7)]}, headers=AUTH
            )
            assert batch.status_code == 503
            assert batch.json()["reason"] == "feature_store_unavailable"
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
            assert ready.status_code == 200  # the model is loaded; only Redis is gone
            assert ready.json()["feature_store"] == "RedisFeatureStore"
            errors_while_down = feature_store_errors(client)
            assert errors_while_down >= 20

            # 3. Redis back on the same port (empty): the same service recovers by itself.
            traffic.phase = "restarting"
            throwaway_redis.start()
            traffic.phase = "back"
            wait_for(
                lambda: sum(1 for e in traffic.of("back") if e[1] == 200) >= 20,
                30,
                "successful scoring after Redis came back",
            )
        finally:
            traffic.stopping.set()
            traffic.join(10)
        assert not traffic.is_alive()

        up, down, back = traffic.of("up"), traffic.of("down"), traffic.of("back")
        # Up: every request scored.
        assert {status for _, status, _, _ in up} == {200}
        # Down: a clear 503 for every request once the outage is noticed (an in-flight request
        # may still have completed), never a 500 or a hang beyond the fail-fast client's budget.
        assert all(s in (200, 503) for _, s, _, _ in down), down
        failed = [e for e in down if e[1] == 503]
        assert len(failed) >= len(down) - 2
        assert {reason for _, _, reason, _ in failed} == {"feature_store_unavailable"}
        assert max(seconds for *_, seconds in failed) < 3.0
        # Back: at most the first call on a dead pooled connection fails, then all succeed.
        statuses = [s for _, s, _, _ in back]
        assert all(s in (200, 503) for s in statuses)
        first_ok = statuses.index(200)
        assert first_ok <= 2, statuses[:10]
        assert set(statuses[first_ok:]) == {200}, statuses
        assert feature_store_errors(client) >= errors_while_down

        r = client.post("/v1/score", json=tx(8), headers=AUTH)
        assert r.status_code == 200, r.text
        metrics = client.get("/metrics").text
        assert re.search(
            r'fraud_api_requests_total\{endpoint="/v1/score",method="POST",status="503"\} ', metrics
        )


def test_redis_down_at_start_then_up_needs_no_restart(source, tmp_path):
    """A service started while Redis is not there yet answers 503, then scores once it is."""
    server = ThrowAwayRedis(free_port(), tmp_path)
    with TestClient(make_app(source, server.port)) as client:
        r = client.post("/v1/score", json=tx(1), headers=AUTH)
        assert r.status_code == 503
        assert r.json()["reason"] == "feature_store_unavailable"
        assert client.get("/healthz").status_code == 200
        try:
            server.start()
            r = client.post("/v1/score", json=tx(2), headers=AUTH)
            assert r.status_code == 200, r.text
        finally:
            server.kill()
