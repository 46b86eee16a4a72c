"""The investigators' desk through the real app (TestClient): the role, the queue in score
order within the budget, the card page, and a decision that becomes labels, audit and feedback
features at once."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fraud_assets.features.feedback import FEEDBACK_FEATURES
from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.app import create_app
from fraud_assets.serving.feedback_state import FeedbackState
from fraud_assets.serving.labels import LabelLog, read_label_log
from fraud_assets.serving.model_source import ModelSource
from fraud_assets.serving.online_features import InMemoryFeatureStore
from fraud_assets.serving.scoring import Scorer
from fraud_assets.serving.settings import ServiceSettings

ORIGIN = dt.date(2018, 4, 1)
DAY = dt.datetime(2018, 5, 2)
API, LABELS, DESK = "score-token", "label-token", "desk-token"
AUTH = {"Authorization": f"Bearer {API}"}


@pytest.fixture(scope="module")
def model_source() -> ModelSource:
    """A small CatBoost model whose score rises with the amount (via the card's mean)."""
    from catboost import CatBoostClassifier, Pool

    rng = np.random.default_rng(0)
    x = rng.random((600, len(FEATURE_COLUMNS))) * 200
    j = FEATURE_COLUMNS.index("customer_avg_amount_1d")
    y = (x[:, j] > 100).astype(int)
    model = CatBoostClassifier(iterations=30, depth=3, verbose=False, thread_count=1)
    model.fit(Pool(x, y, feature_names=list(FEATURE_COLUMNS)))
    # Everything at or above 0 is at least "review": every card alerts, block above 0.999.
    return ModelSource.fixed(model, threshold=0.999, version=1, review_threshold=0.0)


def make_app(model_source: ModelSource, tmp_path, **settings: object):
    scorer = Scorer(
        InMemoryFeatureStore(),
        model_source,
        pseudonymizer=Pseudonymizer(b"k"),
        origin=ORIGIN,
        label_log=LabelLog(tmp_path / "labels"),
        feedback_state=FeedbackState(),
    )
    options: dict[str, object] = {
        "origin_date": ORIGIN,
        "mlflow_tracking_uri": "sqlite:///unused.db",
        "api_token": API,
        "feedback_token": LABELS,
        "investigator_token": DESK,
        "label_log_dir": tmp_path / "labels",
        "desk_budget": 3,
    }
    return create_app(scorer, settings=ServiceSettings(**(options | settings)))


def tx(i: int, card: int, terminal: int, amount: float, minutes: int) -> dict:
    when = DAY + dt.timedelta(minutes=minutes)
    return {
        "transaction_id": i,
        "tx_datetime": when.isoformat(sep=" "),
        "customer_id": card,
        "terminal_id": terminal,
        "tx_amount": amount,
    }


def sign_in(client: TestClient, name: str = "ana") -> None:
    r = client.post("/desk/login", data={"name": name, "secret": DESK}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_without_the_role_the_desk_refuses(model_source, tmp_path) -> None:
    with TestClient(make_app(model_source, tmp_path, investigator_token=None)) as c:
        assert c.get("/desk").status_code == 403
        assert c.post("/desk/login", data={"name": "x", "secret": "y"}).status_code == 403
    with TestClient(make_app(model_source, tmp_path)) as c:
        r = c.post("/v1/score", json=tx(1, 10, 20, 50.0, 0), headers=AUTH)
        assert r.status_code == 200
        assert c.get("/desk").status_code == 401  # no session
        assert c.get("/desk", headers=AUTH).status_code == 403  # the scoring token
        r = c.post("/desk/login", data={"name": "x", "secret": API})
        assert r.status_code == 401  # another role's token does not sign in
        pseudo = Pseudonymizer(b"k").one("customer", 10)
        r = c.post(
            f"/desk/cards/{pseudo}/decision", data={"day": "2018-05-02", "decision": "fraud"}
        )
        assert r.status_code == 401
        forged = {"fraud_desk": "ana|9999999999|00"}
        assert c.get("/desk", cookies=forged).status_code == 401
    assert not (tmp_path / "labels").exists() or not read_label_log(tmp_path / "labels").height


def test_queue_card_decision_labels_and_feedback_features(model_source, tmp_path) -> None:
    with TestClient(make_app(model_source, tmp_path)) as c:
        # Five cards at their own terminals, amounts spreading their scores.
        for card, amount in enumerate((20.0, 180.0, 60.0, 150.0, 110.0)):
            for n in range(2):
                body = tx(100 * card + n, card, 500 + card, amount, 60 * card + n)
                assert c.post("/v1/score", json=body, headers=AUTH).status_code == 200
        sign_in(c)
        page = c.get("/desk", params={"day": "2018-05-02"})
        assert page.status_code == 200
        rows = [
            (int(card), float(score))
            for card, score in __import__("re").findall(
                r'data-card="(\d+)" data-score="([0-9.]+)"', page.text
            )
        ]
        assert len(rows) == 3  # the budget
        scores = [s for _, s in rows]
        assert scores == sorted(scores, reverse=True)
        top_card = rows[0][0]

        card_page = c.get(f"/desk/cards/{top_card}", params={"day": "2018-05-02"})
        assert card_page.status_code == 200
        assert 'id="reasons"' in card_page.text
        assert "customer_avg_amount_1d" in card_page.text
        assert card_page.text.count('class="alert"') + card_page.text.count('class="block"') == 2

        r = c.post(
            f"/desk/cards/{top_card}/decision",
            data={"day": "2018-05-02", "decision": "fraud", "note": "card confirmed <stolen>"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        after = c.get("/desk", params={"day": "2018-05-02"}).text
        assert f'data-card="{top_card}"' not in after

        # The label table: both transactions of the card's day, from the desk.
        labels = read_label_log(tmp_path / "labels")
        mine = labels.filter(labels["customer_id"] == top_card)
        assert mine.height == 2 and mine["fraud"].all()
        assert set(mine["source"]) == {"desk:ana"}
        assert mine["known_at_seconds"].is_not_null().all()

        # The audit log: who, what, the note (escaped on the page).
        audit = LabelLog(tmp_path / "labels", prefix="audit").read()
        assert [(a["investigator"], a["decision"], a["card"]) for a in audit] == [
            ("ana", "fraud", top_card)
        ]
        page = c.get("/desk/audit").text
        assert "card confirmed &lt;stolen&gt;" in page

        # The next transaction at that terminal carries the confirmed fraud.
        terminal = (
            500
            + [card for card in range(5) if Pseudonymizer(b"k").one("customer", card) == top_card][
                0
            ]
        )
        nxt = tx(9999, 77, terminal, 30.0, 600)
        f = c.post("/v1/features", json=nxt, headers=AUTH).json()["features"]
        assert f["terminal_confirmed_fraud_1d"] == 2
        assert f["card_confirmed_fraud_1d"] == 0
        assert set(FEEDBACK_FEATURES) <= set(f)

        metrics = c.get("/metrics").text
        assert 'fraud_desk_decisions_total{decision="fraud"} 1.0' in metrics
        assert "fraud_desk_time_to_decision_seconds_count 1.0" in metrics
        assert "fraud_desk_queue_depth 4.0" in metrics


def test_decisions_survive_a_restart(model_source, tmp_path) -> None:
    with TestClient(make_app(model_source, tmp_path)) as c:
        assert c.post("/v1/score", json=tx(1, 3, 4, 90.0, 0), headers=AUTH).status_code == 200
        sign_in(c)
        card = Pseudonymizer(b"k").one("customer", 3)
        r = c.post(
            f"/desk/cards/{card}/decision",
            data={"day": "2018-05-02", "decision": "genuine", "note": ""},
            follow_redirects=False,
        )
        assert r.status_code == 303
    with TestClient(make_app(model_source, tmp_path)) as c:
        assert c.post("/v1/score", json=tx(2, 3, 4, 95.0, 5), headers=AUTH).status_code == 200
        sign_in(c, "bo")
        assert f'data-card="{card}"' not in c.get("/desk", params={"day": "2018-05-02"}).text
    assert (
        json.loads(json.dumps(LabelLog(tmp_path / "labels", prefix="audit").read()))[0]["decision"]
        == "genuine"
    )


def test_demo_plays_a_day_through_the_desk(model_source, tmp_path) -> None:
    """`make demo`'s desk step: the queue's cards decided from the raw file's truth."""
    from rich.console import Console

    from fraud_assets.cli.demo import DemoSummary, _play_investigators
    from fraud_assets.serving.desk.desk import Desk

    scorer = Scorer(
        InMemoryFeatureStore(), model_source, pseudonymizer=Pseudonymizer(b"k"), origin=ORIGIN,
        label_log=LabelLog(tmp_path / "labels"), feedback_state=FeedbackState(),
    )  # fmt: skip
    desk = Desk(budget=3)
    scorer.observers.append(desk.observe)
    rows = [tx(10 * card + n, card, 40 + card, 30.0 + 40 * card, 10 * card + n)
            for card in range(4) for n in range(2)]  # fmt: skip
    scorer.score_many(rows)
    fraud_ids = {30, 31}  # card 3: the highest amounts, so the top of the queue
    raw = tmp_path / "2018-05-02.txt"
    lines = ["TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,"
             "TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO"]  # fmt: skip
    for r in rows:
        f = int(r["transaction_id"] in fraud_ids)
        lines.append(f"{r['transaction_id']},{r['tx_datetime']},{r['customer_id']},"
                     f"{r['terminal_id']},{r['tx_amount']},0,0,{f},{f}")  # fmt: skip
    raw.write_text("\n".join(lines) + "\n")
    summary = DemoSummary()
    _play_investigators(Console(quiet=True), scorer, desk, raw, DAY.date(), summary)
    assert summary.desk["queue"] == 3
    assert summary.desk["confirmed"] == 1
    assert summary.desk["labelled"] == 2 and summary.desk["terminals"] == 1
    f = scorer.features_many([tx(99, 9, 43, 10.0, 300)])[0]["features"]
    assert f["terminal_confirmed_fraud_1d"] == 2
