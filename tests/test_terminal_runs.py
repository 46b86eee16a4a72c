"""terminal_fraud_run_days and the amount features, read literally from spec, row by row."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.features.polars_engine import compute_features
from fraud_assets.features.spec import LABEL_DELAY_DAYS, RUN_WINDOW_DAYS, SECONDS_PER_DAY
from tests.support import hand_rows

DAY = SECONDS_PER_DAY
D, R = LABEL_DELAY_DAYS * DAY, RUN_WINDOW_DAYS * DAY


def reference_run_days(rows: list[tuple], tx: tuple) -> float:
    """spec, literally: the terminal's rows in (t - D - R, t - D] in (time, id) order; if the
    last is a fraud, walk back over the unbroken frauds to the first; else 0."""
    t, terminal = tx[1], tx[3]
    known = sorted(
        (r[1], r[0], r[5]) for r in rows if r[3] == terminal and t - D - R < r[1] <= t - D
    )
    if not known or not known[-1][2]:
        return 0.0
    i = len(known) - 1
    while i > 0 and known[i - 1][2]:
        i -= 1
    return (t - known[i][0]) / DAY


row = st.tuples(
    st.integers(0, 3),  # terminal
    st.integers(0, 50 * DAY),  # time
    st.booleans(),  # fraud
)


@given(st.lists(row, min_size=1, max_size=120), st.sampled_from([0, D, D + R, DAY]))
@settings(max_examples=120, deadline=None)
def test_terminal_fraud_run_days_follows_spec(drawn, snap):
    # Some times snapped to window edges and duplicated, so ties and edges are exercised.
    rows = []
    for i, (terminal, t, fraud) in enumerate(drawn):
        if i % 5 == 1 and rows:
            t = rows[-1][1]  # same second as the previous row
        elif i % 7 == 3 and rows:
            t = rows[0][1] + snap  # exactly a window width after another row
        rows.append((1000 - i, t, i % 3, terminal, 10.0 + i, int(fraud)))
    out = compute_features(hand_rows(rows))
    got = dict(zip(out["transaction_id"], out["terminal_fraud_run_days"], strict=True))
    for r in rows:
        assert got[r[0]] == reference_run_days(rows, r), r


def test_a_run_that_began_before_the_window_is_cut_at_the_window():
    # Terminal 1: frauds every 5 days from day 0 to day 45. A transaction on day 50 knows the
    # labels up to day 43; its window (day 13, day 43] holds frauds from day 15 on: 35 days ago.
    rows = [(i, 5 * i * DAY, 1, 1, 10.0, 1) for i in range(10)]
    rows.append((100, 50 * DAY, 2, 1, 10.0, 0))
    out = compute_features(hand_rows(rows)).filter(pl.col("transaction_id") == 100)
    assert out["terminal_fraud_run_days"].item() == pytest.approx(35.0)


def test_amount_ratio_features_divide_the_amount_by_the_cards_means():
    rows = [(1, 0, 7, 1, 10.0, 0), (2, 3 * DAY, 7, 1, 30.0, 0), (3, 3 * DAY + 5, 7, 2, 50.0, 0)]
    out = compute_features(hand_rows(rows)).sort("transaction_id")
    last = out.row(2, named=True)
    assert last["tx_amount"] == 50.0
    assert last["customer_amount_ratio_1d"] == 50.0 / ((30.0 + 50.0) / 2)
    assert last["customer_amount_ratio_7d"] == 50.0 / ((10.0 + 30.0 + 50.0) / 3)
    assert last["customer_amount_ratio_30d"] == last["customer_amount_ratio_7d"]
