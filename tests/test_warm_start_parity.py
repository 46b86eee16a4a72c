"""Issue 15, "Done when": a service started from a lake of N simulated days, replaying day N+1
through HTTP in time order, returns for every transaction exactly the batch features computed
afterwards for that day -- with the in-process store (warm start from the lake) and with Redis
(state published by the `online_feature_state` domain code). The consistency check of that asset
agrees, and says so when the batch features are wrong.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
import redis
from fastapi.testclient import TestClient

from fraud_assets.batch.pipeline import clean_into_lake, features_into_lake
from fraud_assets.cleaning import CleaningConfig
from fraud_assets.features.polars_engine import compute_features
from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.lake import CLEAN, FEATURES, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.online_state.consistency import check_batch
from fraud_assets.online_state.publish import publish_batches, warm_start
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.app import create_app
from fraud_assets.serving.model_source import ModelSource
from fraud_assets.serving.online_features import (
    InMemoryFeatureStore,
    OnlineFeatureStore,
    RedisFeatureStore,
)
from fraud_assets.serving.replay import raw_requests
from fraud_assets.serving.scoring import Scorer
from fraud_assets.serving.settings import ServiceSettings
from tests.support import SMALL, write_days

pytestmark = pytest.mark.slow

N = 9
KEY = b"test-key"
REL_TOL = 1e-9


@pytest.fixture(scope="module")
def lake_of_n_days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path]:
    """N + 1 simulated days landed; the first N cleaned and featurised into the lake."""
    root = tmp_path_factory.mktemp("warm-start")
    summary = write_days(root / "landing", days=N + 1, seed=11)
    lake = Lake(*filesystem_for(str(root / "lake")))
    config = CleaningConfig(origin_date=SMALL["start_date"])
    for batch in summary.batches[:N]:
        clean_into_lake(lake, root / "landing" / f"{batch}.txt", batch, Pseudonymizer(KEY), config)
        features_into_lake(lake, batch)
    return root / "lake", list(summary.batches), root / "landing"


@pytest.fixture(params=["memory", "redis"])
def started_store(request: pytest.FixtureRequest, lake_of_n_days) -> Iterator[OnlineFeatureStore]:
    lake_path, batches, _ = lake_of_n_days
    if request.param == "memory":
        store = InMemoryFeatureStore()
        lines: list[str] = []
        loaded = warm_start(store, str(lake_path), emit=lines.append)
        assert loaded is not None and loaded.newest_batch == batches[N - 1]
        assert "loading the online state" in lines[0] and " s; newest batch " in lines[-1]
        yield store
        return
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=10)
    store = RedisFeatureStore(client, prefix=f"fraud-warm:{uuid.uuid4().hex}:")
    try:
        lake = Lake(*filesystem_for(str(lake_path)))
        published = publish_batches(store, lake, batches[:N])
        again = publish_batches(store, lake, batches[:N])  # idempotent: nothing new
        assert published.added > 0 and again.added == 0
        yield store
    finally:
        store.clear()
        client.close()


def test_day_n_plus_1_replayed_over_http_matches_the_batch_features(started_store, lake_of_n_days):
    replay_day_n_plus_1_and_compare(started_store, lake_of_n_days, SMALL["start_date"])


def test_a_service_counting_time_from_another_origin_gets_the_same_features(lake_of_n_days):
    """`make demo`'s lake counts from 2025-01-01, `fraud serve` by default from 2018-04-01: the
    warm start counts the state's times from the service's origin, so both clocks agree."""
    lake_path, _, _ = lake_of_n_days
    origin = dt.date(2018, 4, 1)
    store = InMemoryFeatureStore()
    warm_start(
        store, str(lake_path), emit=lambda _: None, origin=dt.datetime.combine(origin, dt.time())
    )
    replay_day_n_plus_1_and_compare(store, lake_of_n_days, origin)


def replay_day_n_plus_1_and_compare(
    started_store: OnlineFeatureStore, lake_of_n_days, origin: dt.date
) -> None:
    lake_path, batches, landing = lake_of_n_days
    day = batches[N]
    requests = raw_requests(landing / f"{day}.txt")
    requests.sort(key=lambda r: (r["tx_datetime"], r["transaction_id"]))
    scorer = Scorer(
        started_store,
        ModelSource(registry=None),
        pseudonymizer=Pseudonymizer(KEY),
        origin=origin,
    )
    settings = ServiceSettings(origin_date=origin, mlflow_tracking_uri="sqlite:///unused.db")
    online = []
    with TestClient(create_app(scorer, settings=settings)) as client:
        ready = client.get("/readyz").json()["online_state"]
        assert ready["newest_batch"] == batches[N - 1]
        for body in requests:
            r = client.post("/v1/features", json=body)
            assert r.status_code == 200, r.text
            online.append({"transaction_id": body["transaction_id"], **r.json()["features"]})

    # Afterwards: the batch pipeline cleans day N+1 and computes its features.
    lake = Lake(*filesystem_for(str(lake_path)))
    config = CleaningConfig(origin_date=SMALL["start_date"])
    scratch = Lake(*filesystem_for(str(lake_path.parent / f"after-{uuid.uuid4().hex}")))
    clean_day = clean_into_lake(
        scratch, landing / f"{day}.txt", day, Pseudonymizer(KEY), config
    ).clean
    history = lake.read_by_date(CLEAN, dt.date(2000, 1, 1), dt.date(2100, 1, 1))
    batch = compute_features(pl.concat([history, clean_day], how="vertical_relaxed")).filter(
        pl.col("batch_id") == day
    )
    assert batch.height == len(online) > 500
    joined = pl.DataFrame(online).join(
        batch.select("transaction_id", *FEATURE_COLUMNS), on="transaction_id", suffix="_batch"
    )
    assert joined.height == len(online)
    problems = []
    for name in FEATURE_COLUMNS:
        a, b = pl.col(name).cast(pl.Float64), pl.col(f"{name}_batch").cast(pl.Float64)
        wrong = joined.filter((a - b).abs() > REL_TOL * pl.max_horizontal(a.abs(), b.abs()))
        if wrong.height:
            problems.append(f"{name}: {wrong.height} differ, e.g. {wrong.head(2).to_dicts()}")
    assert not problems, "\n".join(problems)
    # The state had the history: a card's 30-day count is more than the day alone gives.
    assert joined["customer_nb_tx_30d"].max() > joined["customer_nb_tx_1d"].max()


def test_the_consistency_check_passes_and_catches_a_wrong_feature(lake_of_n_days):
    lake_path, batches, _ = lake_of_n_days
    lake = Lake(*filesystem_for(str(lake_path)))
    newest = batches[N - 1]
    result = check_batch(lake, newest)
    assert result.rows > 500 and result.match_rate == 1.0 and not result.worst_columns

    features = lake.read_batch(FEATURES, newest)
    broken = features.with_columns(
        pl.when(pl.col("transaction_id") % 10 == 0)
        .then(pl.col("terminal_risk_7d") + 0.5)
        .otherwise(pl.col("terminal_risk_7d"))
        .alias("terminal_risk_7d")
    ).sort("tx_time_seconds", "transaction_id")
    lake.write_by_date(FEATURES, newest, broken)
    try:
        bad = check_batch(lake, newest)
        assert 0.8 < bad.match_rate < 0.95
        assert bad.worst_columns[0][0] == "terminal_risk_7d"
        assert [c for c, _ in bad.worst_columns] == ["terminal_risk_7d"]
    finally:
        lake.write_by_date(FEATURES, newest, features.sort("tx_time_seconds", "transaction_id"))


def test_fraud_serve_warm_starts_from_the_lake_and_says_so(lake_of_n_days, tmp_path):
    """The real command in its own process, with the default FRAUD_ORIGIN_DATE: a progress line
    with the time, then /readyz names the newest batch in the state."""
    lake_path, batches, _ = lake_of_n_days
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FRAUD_") and k != "DAGSTER_HOME"
    }
    env |= {
        "FRAUD_LAKE_URL": str(lake_path),
        "FRAUD_DATA_DIR": str(tmp_path / "data"),
        "FRAUD_MODEL_POLL_SECONDS": "3600",
    }
    log = tmp_path / "serve.log"
    fraud = Path(sys.executable).parent / "fraud"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(fraud), "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and ready is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.2)
        text = log.read_text()
        assert ready is not None, text
        assert ready["online_state"]["newest_batch"] == batches[N - 1]
        assert "warm start: loading the online state from" in text
        assert "transactions loaded in" in text and f"newest batch {batches[N - 1]}" in text
        # The next day's first transaction gets its card's history (the default origin differs
        # from the lake's: the state's times were counted again from it).
        _, _, landing = lake_of_n_days
        first = sorted(raw_requests(landing / f"{batches[N]}.txt"), key=lambda r: r["tx_datetime"])
        r = httpx.post(f"http://127.0.0.1:{port}/v1/features", json=first[0], timeout=10)
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_replaying_a_day_the_state_already_holds_gives_its_batch_features(
    started_store, lake_of_n_days
):
    """`make demo` replays the newest ingested day: every transaction is already in the state,
    is counted once, and gets exactly the lake's features for it."""
    lake_path, batches, landing = lake_of_n_days
    day = batches[N - 1]
    requests = sorted(
        raw_requests(landing / f"{day}.txt"), key=lambda r: (r["tx_datetime"], r["transaction_id"])
    )
    scorer = Scorer(
        started_store,
        ModelSource(registry=None),
        pseudonymizer=Pseudonymizer(KEY),
        origin=SMALL["start_date"],
    )
    online = [
        {"transaction_id": f["transaction_id"], **f["features"]}
        for f in scorer.features_many(requests)
    ]
    lake = Lake(*filesystem_for(str(lake_path)))
    batch = lake.read_batch(FEATURES, day)
    joined = pl.DataFrame(online).join(
        batch.select("transaction_id", *FEATURE_COLUMNS), on="transaction_id", suffix="_batch"
    )
    assert joined.height == len(online) == batch.height
    for name in FEATURE_COLUMNS:
        a, b = pl.col(name).cast(pl.Float64), pl.col(f"{name}_batch").cast(pl.Float64)
        wrong = joined.filter((a - b).abs() > REL_TOL * pl.max_horizontal(a.abs(), b.abs()))
        assert wrong.height == 0, (name, wrong.head(2).to_dicts())
