"""The investigators' desk in a real browser (Playwright + Debian Chromium) against the real
service (uvicorn on a free port, in-process feature store, a small CatBoost model).

An investigator signs in, sees the day's queue in score order within the budget, opens the top
card with its reasons and transactions, confirms fraud; the next transaction at that terminal
is scored with the feedback features set (shown by /v1/features), and the decision is in the
label table and the audit log. Without the investigator role the page and its actions are
refused. Screenshots: screenshots/desk_*.png.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from fraud_assets.dev.dagster_process import free_port
from fraud_assets.features.spec import FEATURE_COLUMNS
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.serving.app import create_app
from fraud_assets.serving.feedback_state import FeedbackState
from fraud_assets.serving.labels import LabelLog, read_label_log
from fraud_assets.serving.model_source import ModelSource
from fraud_assets.serving.online_features import InMemoryFeatureStore
from fraud_assets.serving.scoring import Scorer
from fraud_assets.serving.settings import ServiceSettings
from tests.browser.conftest import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ORIGIN = dt.date(2018, 4, 1)
DAY = dt.datetime(2018, 5, 2, 9, 0)
API, LABELS, DESK = "ui-score-token", "ui-label-token", "ui-desk-token"
BUDGET = 4
KEY = b"desk-ui-key"


def _model() -> ModelSource:
    from catboost import CatBoostClassifier, Pool

    rng = np.random.default_rng(1)
    x = rng.random((600, len(FEATURE_COLUMNS))) * 200
    j = FEATURE_COLUMNS.index("customer_avg_amount_1d")
    y = (x[:, j] > 100).astype(int)
    model = CatBoostClassifier(iterations=30, depth=3, verbose=False, thread_count=1)
    model.fit(Pool(x, y, feature_names=list(FEATURE_COLUMNS)))
    return ModelSource.fixed(model, threshold=0.999, version=1, review_threshold=0.0)


class Service:
    def __init__(self, root: Path) -> None:
        import uvicorn

        self.labels = root / "labels"
        scorer = Scorer(
            InMemoryFeatureStore(),
            _model(),
            pseudonymizer=Pseudonymizer(KEY),
            origin=ORIGIN,
            label_log=LabelLog(self.labels),
            feedback_state=FeedbackState(),
        )
        settings = ServiceSettings(
            origin_date=ORIGIN,
            mlflow_tracking_uri="sqlite:///unused.db",
            api_token=API,
            feedback_token=LABELS,
            investigator_token=DESK,
            label_log_dir=self.labels,
            desk_budget=BUDGET,
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(scorer, settings=settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Service:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def tx(i: int, card: int, terminal: int, amount: float, minutes: int) -> dict:
    return {
        "transaction_id": i,
        "tx_datetime": (DAY + dt.timedelta(minutes=minutes)).isoformat(sep=" "),
        "customer_id": card,
        "terminal_id": terminal,
        "tx_amount": amount,
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    with Service(tmp_path_factory.mktemp("desk_ui")) as s:
        headers = {"Authorization": f"Bearer {API}"}
        with httpx.Client(base_url=s.url, headers=headers) as c:
            # Seven cards, two transactions each at the card's own terminal.
            for card, amount in enumerate((15.0, 190.0, 45.0, 160.0, 120.0, 75.0, 140.0)):
                for n in range(2):
                    r = c.post("/v1/score", json=tx(1000 + 10 * card + n, card, 700 + card,
                                                     amount, 30 * card + n))  # fmt: skip
                    assert r.status_code == 200, r.text
        yield s


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"desk_{name}.png"), full_page=True)


def test_investigator_confirms_fraud_and_the_loop_closes(browser, service: Service) -> None:
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, base_url=service.url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        # Without a session: refused, with the sign-in form.
        response = page.goto("/desk")
        assert response is not None and response.status == 401
        page.fill("#name", "ana")
        page.fill("#secret", DESK)
        page.click("#sign-in")
        page.wait_for_selector("#queue")
        assert page.inner_text("#who") == "ana"

        rows = page.locator("tr.card-row")
        assert rows.count() == BUDGET  # 7 alerting cards, budget 4
        scores = [float(rows.nth(i).get_attribute("data-score")) for i in range(rows.count())]
        assert scores == sorted(scores, reverse=True)
        assert page.inner_text("#depth") == "7"
        _shot(page, "queue")

        top = rows.nth(0).get_attribute("data-card")
        rows.nth(0).locator("a").click()
        page.wait_for_selector("#reasons")
        assert page.inner_text("#card") == top
        assert page.locator("#reasons tr").count() == 4  # header + top 3 reasons
        assert page.locator("#transactions tr").count() == 3  # header + the card's 2
        assert page.locator("#terminals tr").count() == 2
        _shot(page, "card")

        page.check("#verdict-fraud")
        page.fill("#note", "customer confirms the card was stolen")
        page.click("#decide")
        page.wait_for_selector("#queue")
        assert page.locator(f'tr.card-row[data-card="{top}"]').count() == 0
        assert page.inner_text("#depth") == "6"

        page.goto("/desk/audit")
        row = page.locator("tr.audit-row").first
        assert "ana" in row.inner_text() and "fraud" in row.inner_text()
        assert "stolen" in row.inner_text()
        _shot(page, "audit")
    finally:
        context.close()

    # The label table: the card's transactions of the alert window, fraud, from the desk.
    labels = read_label_log(service.labels)
    mine = labels.filter(labels["customer_id"] == int(top))
    assert mine.height == 2 and mine["fraud"].all() and set(mine["source"]) == {"desk:ana"}

    # The next transaction at that terminal is scored with the feedback features set.
    card = next(c for c in range(7) if Pseudonymizer(KEY).one("customer", c) == int(top))
    headers = {"Authorization": f"Bearer {API}"}
    with httpx.Client(base_url=service.url, headers=headers) as c:
        f = c.post("/v1/features", json=tx(5000, 99, 700 + card, 20.0, 400)).json()["features"]
    assert f["terminal_confirmed_fraud_1d"] == 2
    assert f["terminal_confirmed_fraud_7d"] == 2


def test_without_the_role_the_page_and_actions_are_refused(browser, service: Service) -> None:
    context = browser.new_context(base_url=service.url)
    page = context.new_page()
    try:
        response = page.goto("/desk/audit")
        assert response is not None and response.status == 401
        assert page.locator("#error").inner_text() == "sign in as an investigator"
        posted = page.request.post(
            "/desk/cards/1/decision", form={"day": "2018-05-02", "decision": "fraud"}
        )
        assert posted.status == 401
        scoring = page.request.get("/desk", headers={"Authorization": f"Bearer {API}"})
        assert scoring.status == 403
        page.fill("#name", "mallory")
        page.fill("#secret", API)  # another role's token
        page.click("#sign-in")
        page.wait_for_selector("#error")
        assert re.search("wrong investigator token", page.inner_text("#error"))
        _shot(page, "refused")
    finally:
        context.close()
