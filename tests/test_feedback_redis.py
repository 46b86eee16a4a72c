"""The feedback state in real Redis: shared by the service's processes.

A decision taken at the desk of one scoring process (its own Redis client, as one API worker)
changes the feedback features the stream worker's scorer (built by `wiring.build_scorer` from
the settings, as `fraud stream` builds it) computes for the next transaction; and the Redis
state gives the in-process state's numbers for any interleaving of transactions and labels.
The machine's Redis, database 3, keys under `t19b:` (deleted before and after).
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings

from fraud_assets.features.feedback import FEEDBACK_FEATURES
from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.app import create_app
from fraud_assets.serving.feedback_state import FeedbackState, RedisFeedbackState
from fraud_assets.serving.labels import LabelLog
from fraud_assets.serving.model_source import ModelSource
from fraud_assets.serving.online_features import RedisFeatureStore
from fraud_assets.serving.scoring import Scorer
from fraud_assets.serving.settings import ServiceSettings
from fraud_assets.serving.wiring import build_scorer, redis_client
from tests.test_feedback_features import events, play

redis = pytest.importorskip("redis")

URL = "redis://127.0.0.1:6379/3"
PREFIX = "t19b:"
ORIGIN = dt.date(2018, 4, 1)
DAY = dt.datetime(2018, 5, 2)
API, LABELS, DESK = "score-token", "label-token", "desk-token"
KEY = b"k19b"


def _wipe(client) -> None:
    for key in client.scan_iter(match=PREFIX + "*", count=1000):
        client.unlink(key)


@pytest.fixture
def client():
    c = redis.Redis.from_url(URL)
    try:
        c.ping()
    except redis.RedisError as e:  # pragma: no cover - the machine runs Redis
        pytest.skip(f"no Redis at {URL}: {e}")
    _wipe(c)
    yield c
    _wipe(c)


def tx(i: int, card: int, terminal: int, amount: float, minutes: int) -> dict:
    when = DAY + dt.timedelta(minutes=minutes)
    return {"transaction_id": i, "tx_datetime": when.isoformat(sep=" "), "customer_id": card,
            "terminal_id": terminal, "tx_amount": amount}  # fmt: skip


def _model_source() -> ModelSource:
    from catboost import CatBoostClassifier, Pool

    rng = np.random.default_rng(0)
    x = rng.random((300, len(FEATURE_COLUMNS))) * 200
    y = (x[:, FEATURE_COLUMNS.index("customer_avg_amount_1d")] > 100).astype(int)
    model = CatBoostClassifier(iterations=10, depth=2, verbose=False, thread_count=1)
    model.fit(Pool(x, y, feature_names=list(FEATURE_COLUMNS)))
    return ModelSource.fixed(model, threshold=0.999, version=1, review_threshold=0.0)


def test_a_desk_decision_in_one_process_reaches_the_stream_workers_features(
    client, tmp_path, monkeypatch
) -> None:
    # Process A: an API worker with its own Redis client, serving the desk.
    own = redis_client(URL)
    api_scorer = Scorer(
        RedisFeatureStore(own, prefix=PREFIX), _model_source(),
        pseudonymizer=Pseudonymizer(KEY), origin=ORIGIN,
        label_log=LabelLog(tmp_path / "labels"),
        feedback_state=RedisFeedbackState(own, prefix=PREFIX),
    )  # fmt: skip
    options = {"origin_date": ORIGIN, "mlflow_tracking_uri": f"sqlite:///{tmp_path}/m.db",
               "api_token": API, "feedback_token": LABELS, "investigator_token": DESK,
               "label_log_dir": tmp_path / "labels", "desk_budget": 3}  # fmt: skip
    app = create_app(api_scorer, settings=ServiceSettings(**options))

    # Process B: the stream worker's scorer, from the settings alone.
    monkeypatch.setenv("FRAUD_PSEUDONYM_KEY", KEY.decode())
    worker_settings = ServiceSettings(**options, redis_url=URL, redis_prefix=PREFIX)
    worker = build_scorer(worker_settings)
    assert isinstance(worker.feedback_state, RedisFeedbackState)

    auth = {"Authorization": f"Bearer {API}"}
    with TestClient(app) as c:
        for n in range(2):
            assert c.post("/v1/score", json=tx(10 + n, 1, 501, 150.0, n), headers=auth).is_success
        before = worker.features_many([tx(90, 2, 501, 30.0, 300)])[0]["features"]
        assert before["terminal_confirmed_fraud_1d"] == 0
        r = c.post("/desk/login", data={"name": "ana", "secret": DESK}, follow_redirects=False)
        assert r.status_code == 303
        page = c.get("/desk", params={"day": "2018-05-02"}).text
        card = int(re.findall(r'data-card="(\d+)"', page)[0])
        r = c.post(f"/desk/cards/{card}/decision",
                   data={"day": "2018-05-02", "decision": "fraud", "note": ""},
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 303

    # The next transaction, scored by the other process: at the terminal and on the card.
    at_terminal = worker.features_many([tx(91, 3, 501, 30.0, 310)])[0]["features"]
    assert at_terminal["terminal_confirmed_fraud_1d"] == 2
    assert at_terminal["card_confirmed_fraud_1d"] == 0
    on_card = worker.features_many([tx(92, 1, 777, 30.0, 320)])[0]["features"]
    assert on_card["card_confirmed_fraud_1d"] == 2
    assert on_card["card_confirmed_fraud_7d"] == 2
    assert set(FEEDBACK_FEATURES) <= set(on_card)
    # The same label seen from a fresh process (a restarted worker) too.
    again = RedisFeedbackState(redis_client(URL), prefix=PREFIX)
    assert again.clock_of_labels() is not None


@settings(max_examples=60, deadline=None)
@given(evts=events)
def test_redis_state_equals_the_in_process_state(evts) -> None:
    c = redis.Redis.from_url(URL)
    _wipe(c)
    try:
        txs, labels, in_process = play(evts)
        shared = RedisFeedbackState(c, prefix=PREFIX)
        _, _, in_redis = play(evts, state=shared)
        assert in_redis == in_process
        if labels.height:
            assert shared.clock_of_labels() == labels["known_at_seconds"].max()
        keys = [(r["customer_id"], r["terminal_id"], r["tx_time_seconds"]) for r in txs.to_dicts()]
        assert shared.features_for_many(keys) == in_process_after(evts, keys)
    finally:
        _wipe(c)


def in_process_after(evts, keys):
    """The in-process state after every event, read for `keys`."""
    state = FeedbackState()
    play(evts, state=state)
    return state.features_for_many(keys)
