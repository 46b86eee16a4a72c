"""The probe findings of issue 15, each reproduced through the real API and fixed.

- a transaction dated far in the future erased a card's and a terminal's history;
- labels for transactions nobody had seen (and from the scoring token) moved terminal risk;
- a retried transaction id with changed content, or twice in one batch, was counted twice.

Both online stores: the in-process one and Redis (the machine's server, under a unique key
prefix, removed afterwards). No model is needed: /v1/features returns the vector the service
would score with, recorded like a scored transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from fastapi.testclient import TestClient

from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.app import create_app
from fraud_assets.serving.labels import LabelLog
from fraud_assets.serving.model_source import ModelSource
from fraud_assets.serving.online_features import (
    InMemoryFeatureStore,
    OnlineFeatureStore,
    RedisFeatureStore,
    TimeRefused,
    Transaction,
)
from fraud_assets.serving.rules import RuleSet
from fraud_assets.serving.scoring import Scorer
from fraud_assets.serving.settings import ServiceSettings

ORIGIN = dt.date(2018, 4, 1)
KEY = b"guards-test-key"
SCORING = "scoring-token"
LABELLING = "labelling-token"
WHEN = dt.datetime(2018, 5, 20, 12, 0, 0)
DAY = dt.timedelta(days=1)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[OnlineFeatureStore]:
    if request.param == "memory":
        yield InMemoryFeatureStore()
        return
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=10)
    made = RedisFeatureStore(client, prefix=f"fraud-guards:{uuid.uuid4().hex}:")
    try:
        yield made
    finally:
        made.clear()
        client.close()


def make_client(
    store: OnlineFeatureStore, tmp_path, rules: RuleSet | None = None, **tokens: str
) -> TestClient:
    scorer = Scorer(
        store,
        ModelSource(registry=None),
        rules=rules,
        pseudonymizer=Pseudonymizer(KEY),
        origin=ORIGIN,
        label_log=LabelLog(tmp_path / "label_log"),
    )
    settings = ServiceSettings(
        origin_date=ORIGIN, mlflow_tracking_uri="sqlite:///unused.db", **tokens
    )
    return TestClient(create_app(scorer, settings=settings))


def tx(tid: int, when: dt.datetime, customer: int = 7, terminal: int = 3, amount=20.0) -> dict:
    return {
        "transaction_id": tid,
        "tx_datetime": when.isoformat(sep=" "),
        "customer_id": customer,
        "terminal_id": terminal,
        "tx_amount": amount,
    }


def features(client: TestClient, body: dict, headers: dict | None = None) -> dict:
    r = client.post("/v1/features", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["features"]


def walk(client: TestClient, since: dt.datetime, until: dt.datetime, headers=None) -> None:
    """Move the store's clock forward in steps the time guard accepts (another card, terminal)."""
    t, i = since, 0
    while t < until:
        t = min(t + dt.timedelta(hours=20), until)
        features(client, tx(90_000 + i, t, customer=999, terminal=998), headers)
        i += 1


# ------------------------------------------------------------------------------- time guard


def test_a_far_future_transaction_is_refused_and_erases_nothing(store, tmp_path):
    with make_client(store, tmp_path) as client:
        for i in range(10):  # ten days of history for card 7 at terminal 3
            features(client, tx(i, WHEN - (10 - i) * DAY))
        before = features(client, tx(100, WHEN))
        assert before["customer_nb_tx_30d"] == 11

        r = client.post("/v1/features", json=tx(999, dt.datetime(2200, 1, 1)))
        assert r.status_code == 422
        (error,) = r.json()["detail"]
        assert error["loc"] == ["body", "tx_datetime"] and "future" in error["msg"]

        # One day past the store's clock (the default skew) is still accepted; a second more is not.
        ahead = dt.datetime.combine(ORIGIN, dt.time()) + dt.timedelta(
            seconds=store.clock() + store.max_skew_seconds + 1
        )
        refused = client.post("/v1/features", json=tx(998, ahead, customer=8))
        assert refused.status_code == 422 and "FRAUD_MAX_CLOCK_SKEW_SECONDS" in refused.text

        after = features(client, tx(101, WHEN + dt.timedelta(minutes=1)))
        assert after["customer_nb_tx_30d"] == 12  # nothing was pruned, nothing was counted
        assert store.seen(999) is None and store.seen(998) is None


def test_a_transaction_older_than_the_online_history_is_refused(store, tmp_path):
    with make_client(store, tmp_path) as client:
        features(client, tx(1, WHEN))
        r = client.post("/v1/features", json=tx(2, WHEN - 40 * DAY))
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "tx_datetime"]
        assert "reaches back" in r.json()["detail"][0]["msg"]


def test_a_batch_with_one_refused_item_records_nothing(store, tmp_path):
    with make_client(store, tmp_path, api_token=SCORING) as client:
        features(client, tx(1, WHEN), {"Authorization": f"Bearer {SCORING}"})
        items = [tx(2, WHEN + dt.timedelta(seconds=5)), tx(3, WHEN + 5 * DAY)]
        r = client.post(
            "/v1/score/batch",
            json={"transactions": items},
            headers={"Authorization": f"Bearer {SCORING}"},
        )
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "transactions", 1, "tx_datetime"]
    assert store.seen(2) is None and store.seen(3) is None


def test_the_store_guard_holds_without_the_api(store):
    t0 = 50 * 86_400
    store.features_for(Transaction(1, WHEN, 1, 1, 5.0, t0))
    with pytest.raises(TimeRefused, match="ahead"):
        store.features_for(Transaction(2, WHEN, 1, 1, 5.0, t0 + 2 * 86_400))
    assert store.clock() == t0


# ------------------------------------------------------------------------------- labels


def test_labels_for_unseen_transactions_are_refused_and_change_no_risk(store, tmp_path):
    auth = {"Authorization": f"Bearer {LABELLING}"}
    with make_client(store, tmp_path, api_token=SCORING, feedback_token=LABELLING) as client:
        score_auth = {"Authorization": f"Bearer {SCORING}"}
        for tid in (1, 2, 3):  # fabricated: never scored, never landed
            r = client.post(
                "/v1/feedback",
                json={"transaction_id": tid, "terminal_id": 55, "fraud": True},
                headers=auth,
            )
            assert r.status_code == 404, r.text
            assert r.json()["reason"] == "unknown_transaction"
        walk(client, WHEN, WHEN + 8 * DAY, score_auth)
        later = features(client, tx(10, WHEN + 8 * DAY, terminal=55), score_auth)
        assert later["terminal_risk_7d"] == 0.0 and later["terminal_nb_tx_7d"] == 0
    assert LabelLog(tmp_path / "label_log").read() == []


def test_labelling_needs_its_own_role(store, tmp_path):
    with make_client(store, tmp_path, api_token=SCORING, feedback_token=LABELLING) as client:
        scoring = {"Authorization": f"Bearer {SCORING}"}
        labelling = {"Authorization": f"Bearer {LABELLING}"}
        features(client, tx(1, WHEN, terminal=9), scoring)
        label = {"transaction_id": 1, "fraud": True}
        r = client.post("/v1/feedback", json=label, headers=scoring)
        assert r.status_code == 403 and "labelling role" in r.json()["detail"]
        assert client.post("/v1/feedback", json=label).status_code == 401
        # ... and the labelling token cannot score.
        assert client.post("/v1/features", json=tx(2, WHEN), headers=labelling).status_code == 403
        r = client.post("/v1/feedback", json=label, headers=labelling)
        assert r.status_code == 200, r.text
        later_time = WHEN + 7 * DAY + dt.timedelta(hours=1)
        walk(client, WHEN, later_time - dt.timedelta(minutes=1), scoring)
        later = features(client, tx(3, later_time, terminal=9), scoring)
        assert later["terminal_risk_1d"] == 1.0
    (logged,) = LabelLog(tmp_path / "label_log").read()
    assert logged["transaction_id"] == 1 and logged["fraud"] is True


def test_labelling_is_closed_when_only_the_scoring_token_is_set(store, tmp_path):
    with make_client(store, tmp_path, api_token=SCORING) as client:
        scoring = {"Authorization": f"Bearer {SCORING}"}
        features(client, tx(1, WHEN), scoring)
        r = client.post("/v1/feedback", json={"transaction_id": 1, "fraud": True}, headers=scoring)
        assert r.status_code == 403 and "FRAUD_FEEDBACK_TOKEN" in r.json()["detail"]
        r = client.post("/v1/feedback", json={"transaction_id": 1, "fraud": True})
        assert r.status_code == 403 and r.json()["reason"] == "role_not_configured"


def test_a_label_naming_another_terminal_is_refused(store, tmp_path):
    with make_client(store, tmp_path) as client:
        features(client, tx(1, WHEN, terminal=9))
        r = client.post(
            "/v1/feedback", json={"transaction_id": 1, "terminal_id": 10, "fraud": True}
        )
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "terminal_id"]


def test_a_published_batch_transaction_can_be_labelled(store, tmp_path):
    import polars as pl

    p = Pseudonymizer(KEY)
    seconds = int((WHEN - dt.datetime.combine(ORIGIN, dt.time())).total_seconds())
    landed = pl.DataFrame(
        {
            "transaction_id": [500],
            "customer_id": [p.one("customer", 7)],
            "terminal_id": [p.one("terminal", 3)],
            "tx_amount": [12.0],
            "tx_time_seconds": [seconds],
            "tx_fraud": [0],
            "tx_datetime": [WHEN],
        }
    )
    store.publish_snapshot(landed, batch_id="2018-05-20")
    with make_client(store, tmp_path) as client:
        r = client.post("/v1/feedback", json={"transaction_id": 500, "fraud": True})
        assert r.status_code == 200, r.text
        assert client.get("/readyz").json()["online_state"]["newest_batch"] == "2018-05-20"


# ------------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    "retry",
    [
        {"tx_amount": 5000.0},  # changed amount
        {"customer_id": 8},  # another card
        {"tx_datetime": (WHEN + dt.timedelta(seconds=1)).isoformat(sep=" ")},  # 1 s later
    ],
    ids=["amount", "card", "one-second-later"],
)
def test_a_retry_with_changed_content_is_counted_once_first_version_wins(store, tmp_path, retry):
    with make_client(store, tmp_path) as client:
        features(client, tx(1, WHEN - DAY, amount=10.0))
        first = features(client, tx(2, WHEN, amount=30.0))
        again = features(client, {**tx(2, WHEN, amount=30.0), **retry})
        assert again == first  # scored as the first version
        nxt = features(client, tx(3, WHEN + dt.timedelta(minutes=5), amount=20.0))
        assert nxt["customer_nb_tx_30d"] == 3
        assert nxt["customer_avg_amount_30d"] == pytest.approx(20.0)
        other_card = features(client, tx(4, WHEN + dt.timedelta(minutes=6), customer=8))
        assert other_card["customer_nb_tx_30d"] == 1  # the retry never reached card 8


def test_a_duplicate_id_in_one_batch_is_counted_once(store, tmp_path):
    # Every amount is above the hard limit, so the rule decides: no model is needed.
    with make_client(store, tmp_path, rules=RuleSet(max_amount=1.0)) as client:
        body = {
            "transactions": [
                tx(1, WHEN, amount=10.0),
                tx(1, WHEN, amount=99.0),  # same id, other content
                tx(2, WHEN + dt.timedelta(seconds=30), amount=30.0),
            ]
        }
        r = client.post("/v1/score/batch?features=true", json=body)
        assert r.status_code == 200, r.text
        vectors = [item["features"] for item in r.json()["results"]]
        nxt = features(client, tx(3, WHEN + dt.timedelta(minutes=1), amount=20.0))
    assert vectors[0] == vectors[1]
    assert vectors[0]["customer_avg_amount_1d"] == 10.0
    assert vectors[2]["customer_nb_tx_1d"] == 2
    assert vectors[2]["customer_avg_amount_1d"] == pytest.approx(20.0)
    assert nxt["customer_nb_tx_1d"] == 3 and nxt["customer_avg_amount_1d"] == pytest.approx(20.0)


def test_the_scorer_batch_deduplicates_before_the_store(store):
    scorer = Scorer(
        store, ModelSource(registry=None), pseudonymizer=Pseudonymizer(KEY), origin=ORIGIN
    )
    out = scorer.features_many([tx(1, WHEN, amount=10.0), tx(1, WHEN, amount=99.0)])
    assert out[0]["features"] == out[1]["features"]
    assert out[0]["features"]["customer_avg_amount_1d"] == 10.0
    assert set(out[0]["features"]) == set(FEATURE_COLUMNS)


def test_a_refused_item_in_a_group_refuses_only_itself(store):
    """Concurrent single requests are scored together; one far-future item fails alone."""
    t0 = 50 * 86_400
    store.features_for(Transaction(1, WHEN, 1, 1, 5.0, t0))
    group = [
        Transaction(2, WHEN, 1, 1, 5.0, t0 + 10),
        Transaction(3, WHEN, 2, 1, 5.0, t0 + 3 * 86_400),  # refused
        Transaction(4, WHEN, 1, 1, 5.0, t0 + 20),
    ]
    out = store.features_for_many(group)
    assert isinstance(out[1], TimeRefused) and out[1].reason == "future"
    assert out[0]["customer_nb_tx_1d"] == 2 and out[2]["customer_nb_tx_1d"] == 3
    assert store.seen(3) is None and store.seen(4) is not None


def test_concurrent_retries_with_different_content_keep_one_version(store):
    t0 = 50 * 86_400

    def send(i: int) -> dict:
        return store.features_for(Transaction(7, WHEN, 1 + i % 3, 1, 10.0 + i, t0))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, range(32)))
    assert all(r == results[0] for r in results)
    held = store.seen(7)
    nxt = store.features_for(Transaction(8, WHEN, held.customer_id, 1, held.tx_amount, t0 + 1))
    assert nxt["customer_nb_tx_1d"] == 2
    assert nxt["customer_avg_amount_1d"] == pytest.approx(held.tx_amount)


def test_publishing_a_day_already_scored_live_counts_each_transaction_once(store):
    import polars as pl

    t0 = 50 * 86_400
    live = [Transaction(i, WHEN, 1, 2, 10.0, t0 + i) for i in (1, 2, 3)]
    for tx_ in live:
        store.features_for(tx_)
    day = pl.DataFrame(
        {
            "transaction_id": [1, 2, 3, 4],
            "customer_id": [1, 1, 1, 1],
            "terminal_id": [2, 2, 2, 2],
            "tx_amount": [10.0, 10.0, 10.0, 10.0],
            "tx_time_seconds": [t0 + 1, t0 + 2, t0 + 3, t0 + 4],
            "tx_fraud": [0, 0, 0, 1],
            "tx_datetime": [WHEN] * 4,
        }
    )
    assert store.publish_snapshot(day, batch_id="b1") == 1  # only id 4 is new
    assert store.publish_snapshot(day, batch_id="b1") == 0  # and twice changes nothing
    nxt = store.features_for(Transaction(5, WHEN, 1, 2, 10.0, t0 + 5))
    assert nxt["customer_nb_tx_1d"] == 5
    for step in range(1, 9):  # the clock moves a day at a time (another card and terminal)
        store.features_for(Transaction(100 + step, WHEN, 8, 8, 1.0, t0 + step * 86_400 - 60))
    later = store.features_for(Transaction(6, WHEN, 9, 2, 10.0, t0 + 7 * 86_400 + 10))
    assert later["terminal_nb_tx_1d"] == 5 and later["terminal_risk_1d"] == pytest.approx(0.2)
