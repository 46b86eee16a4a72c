"""The terminal fraud-run features and the amount features, read literally from spec, row by
row."""

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


def reference_run(rows: list[tuple], tx: tuple) -> tuple[float, float]:
    """spec, literally: the terminal's rows in (t - D - R, t - D] in (time, id) order; if the
    last is a fraud, walk back over the unbroken frauds to the first: (days since it, smallest
    amount of the run); else (0, 0)."""
    t, terminal = tx[1], tx[3]
    known = sorted(
        (r[1], r[0], r[5], r[4]) for r in rows if r[3] == terminal and t - D - R < r[1] <= t - D
    )
    if not known or not known[-1][2]:
        return 0.0, 0.0
    i = len(known) - 1
    while i > 0 and known[i - 1][2]:
        i -= 1
    return (t - known[i][0]) / DAY, min(k[3] for k in known[i:])


row = st.tuples(
    st.integers(0, 3),  # terminal
    st.integers(0, 50 * DAY),  # time
    st.booleans(),  # fraud
    st.sampled_from([0.01, 3.5, 10.0, 12.34, 99.99, 250.0, 1234.5]),  # amount
)


@given(
    st.lists(row, min_size=1, max_size=120),
    st.sampled_from([0, D, D + R, DAY]),
)
@settings(max_examples=150, deadline=None)
def test_terminal_fraud_run_features_follow_spec(drawn, snap):
    # Some times snapped to window edges and duplicated, so ties and edges are exercised.
    rows = []
    for i, (terminal, t, fraud, value) in enumerate(drawn):
        if i % 5 == 1 and rows:
            t = rows[-1][1]  # same second as the previous row
        elif i % 7 == 3 and rows:
            t = rows[0][1] + snap  # exactly a window width after another row
        rows.append((1000 - i, t, i % 3, terminal, value, int(fraud)))
    out = compute_features(hand_rows(rows))
    days = dict(zip(out["transaction_id"], out["terminal_fraud_run_days"], strict=True))
    smallest = dict(zip(out["transaction_id"], out["terminal_fraud_run_min_amount"], strict=True))
    for r in rows:
        assert (days[r[0]], smallest[r[0]]) == reference_run(rows, r), r


def test_a_run_that_began_before_the_window_is_cut_at_the_window():
    # Terminal 1: frauds every 5 days from day 0 to day 45. A transaction on day 50 knows the
    # labels up to day 43; its window (day 13, day 43] holds frauds from day 15 on: 35 days ago.
    rows = [(i, 5 * i * DAY, 1, 1, 10.0, 1) for i in range(10)]
    rows.append((100, 50 * DAY, 2, 1, 10.0, 0))
    out = compute_features(hand_rows(rows)).filter(pl.col("transaction_id") == 100)
    assert out["terminal_fraud_run_days"].item() == pytest.approx(35.0)


def test_the_run_minimum_amount_counts_only_the_frauds_inside_the_window():
    # Frauds every 5 days from day 0 to day 40; the run's smallest amount (1.0) is on day 10. A
    # transaction on day 48 knows the labels up to day 41, its window (day 11, day 41]:
    # the run inside the window has amounts 30, 25, 20, 15, 10, 5 (days 15..40), so 5.0; a
    # transaction whose newest known label is genuine gets 0.0.
    amounts = [50.0, 40.0, 1.0, 30.0, 25.0, 20.0, 15.0, 10.0, 5.0]
    rows = [(i, 5 * i * DAY, 1, 1, amounts[i], 1) for i in range(9)]
    rows.append((100, 48 * DAY, 2, 1, 10.0, 0))
    rows.append((101, 56 * DAY, 3, 1, 10.0, 0))  # knows day 48's genuine row
    out = compute_features(hand_rows(rows)).sort("transaction_id")
    got = dict(zip(out["transaction_id"], out["terminal_fraud_run_min_amount"], strict=True))
    assert got[100] == 5.0
    assert got[101] == 0.0


def test_amount_ratio_features_divide_the_amount_by_the_cards_means():
    rows = [(1, 0, 7, 1, 10.0, 0), (2, 3 * DAY, 7, 1, 30.0, 0), (3, 3 * DAY + 5, 7, 2, 50.0, 0)]
    out = compute_features(hand_rows(rows)).sort("transaction_id")
    last = out.row(2, named=True)
    assert last["tx_amount"] == 50.0
    assert last["customer_amount_ratio_1d"] == 50.0 / ((30.0 + 50.0) / 2)
    assert last["customer_amount_ratio_7d"] == 50.0 / ((10.0 + 30.0 + 50.0) / 3)
    assert last["customer_amount_ratio_30d"] == last["customer_amount_ratio_7d"]
