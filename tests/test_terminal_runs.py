"""The terminal fraud-run features and the amount features, read literally from spec, row by
row; and the compiled scan behind the run features gives the bits of the Polars expressions it
replaced (docs/decisions/window-scan.md)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.features.polars_engine import compute_features
from fraud_assets.features.spec import (
    LABEL_DELAY_DAYS,
    RUN_WINDOW_DAYS,
    SECONDS_PER_DAY,
    TERMINAL_RUN_FEATURES,
)
from fraud_assets.features.windows import terminal_windows
from tests.support import hand_rows

DAY = SECONDS_PER_DAY
D, R = LABEL_DELAY_DAYS * DAY, RUN_WINDOW_DAYS * DAY


def reference_run(rows: list[tuple], tx: tuple, ratio: dict) -> tuple[float, float, float]:
    """spec, literally: the terminal's rows in (t - D - R, t - D] in (time, id) order; if the
    last is a fraud, walk back over the unbroken frauds to the first: (days since it, smallest
    amount of the run, smallest own 30-day ratio of the run); else (0, 0, 0). `ratio`: each
    transaction's customer_amount_ratio_30d."""
    t, terminal = tx[1], tx[3]
    known = sorted(
        (r[1], r[0], r[5], r[4]) for r in rows if r[3] == terminal and t - D - R < r[1] <= t - D
    )
    if not known or not known[-1][2]:
        return 0.0, 0.0, 0.0
    i = len(known) - 1
    while i > 0 and known[i - 1][2]:
        i -= 1
    run = known[i:]
    return (t - known[i][0]) / DAY, min(k[3] for k in run), min(ratio[k[1]] for k in run)


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
    ids = out["transaction_id"]
    ratio = dict(zip(ids, out["customer_amount_ratio_30d"], strict=True))
    got = {
        tid: values
        for tid, *values in out.select("transaction_id", *TERMINAL_RUN_FEATURES).iter_rows()
    }
    for r in rows:
        assert tuple(got[r[0]]) == reference_run(rows, r, ratio), r


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


def test_the_run_minimum_ratio_takes_each_frauds_own_ratio_at_its_own_time():
    rows = [
        (1, 0, 2, 9, 100.0, 0),
        (2, 1 * DAY, 2, 1, 100.0, 1),  # card 2 pays its usual 100 here: ratio 1.0
        (3, 0, 3, 9, 10.0, 0),
        (4, 2 * DAY, 3, 1, 50.0, 1),  # card 3's 50 against its mean of 30: ratio 5/3
        (5, 3 * DAY, 2, 9, 10_000.0, 0),  # card 2's later amounts change nothing above
        (10, 10 * DAY, 4, 1, 10.0, 0),  # knows the labels up to day 3: the run is #2, #4
    ]
    out = compute_features(hand_rows(rows)).filter(pl.col("transaction_id") == 10)
    assert out["terminal_fraud_run_min_amount"].item() == 50.0  # #4's amount
    assert out["terminal_fraud_run_min_ratio"].item() == 1.0  # #2's ratio


def test_amount_ratio_features_divide_the_amount_by_the_cards_means():
    rows = [(1, 0, 7, 1, 10.0, 0), (2, 3 * DAY, 7, 1, 30.0, 0), (3, 3 * DAY + 5, 7, 2, 50.0, 0)]
    out = compute_features(hand_rows(rows)).sort("transaction_id")
    last = out.row(2, named=True)
    assert last["tx_amount"] == 50.0
    assert last["customer_amount_ratio_1d"] == 50.0 / ((30.0 + 50.0) / 2)
    assert last["customer_amount_ratio_7d"] == 50.0 / ((10.0 + 30.0 + 50.0) / 3)
    assert last["customer_amount_ratio_30d"] == last["customer_amount_ratio_7d"]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 5_000),
    terminals=st.integers(1, 40),
    fraud_share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_compiled_scan_gives_the_bits_of_the_polars_expressions_it_replaced(
    rows: int, terminals: int, fraud_share: float, seed: int
):
    rng = np.random.default_rng(seed)
    frame = hand_rows(
        [
            (i + 1, int(t), 1, int(term), float(a), int(f))
            for i, (t, term, a, f) in enumerate(
                zip(
                    np.sort(rng.integers(0, 90 * DAY, rows) // 3600 * 3600),  # ties in an hour
                    rng.integers(1, terminals + 1, rows),
                    np.round(rng.exponential(50.0, rows), 2),
                    rng.random(rows) < fraud_share,
                    strict=True,
                )
            )
        ]
    )
    scanned = terminal_windows(frame)
    reference = runs_by_polars_expressions(frame)
    for name in ("terminal_fraud_run_days", "terminal_fraud_run_min_amount"):
        assert np.array_equal(scanned[name], reference[name].to_numpy()), name


def test_an_empty_frame_has_no_runs():
    empty = hand_rows([(1, 0, 1, 1, 1.0, 0)]).head(0)
    assert all(len(terminal_windows(empty)[name]) == 0 for name in TERMINAL_RUN_FEATURES[:2])


def runs_by_polars_expressions(frame: pl.DataFrame) -> dict[str, pl.Series]:
    """The run features as the default engine computed them before the compiled scan (sorts,
    `over` windows, two as-of joins, one `np.minimum.reduceat`), for every row of `frame` in frame
    order.

    Per terminal, in (time, id) order, each fraud row carries the position of the first row of
    its unbroken run of frauds. A row at t looks up the terminal's last row with time <= t - d
    (its newest known label): an as-of join on time, over one row per (terminal, second) -- the
    last in id order, as spec orders ties. The run is then cut at the window's start: when it
    began at or before t - d - R, it starts at the terminal's first row inside the window (a
    forward as-of join on the window's edge). The run's rows are then a contiguous slice of the
    terminal-ordered rows, whose smallest amount is one `np.minimum.reduceat`.
    """
    delay = LABEL_DELAY_DAYS * SECONDS_PER_DAY
    width = RUN_WINDOW_DAYS * SECONDS_PER_DAY
    t, fraud = pl.col("tx_time_seconds"), pl.col("tx_fraud")
    rows = (
        frame.select("terminal_id", "tx_time_seconds", "transaction_id", "tx_fraud", "tx_amount")
        .with_row_index("_row")
        .sort("terminal_id", "tx_time_seconds", "transaction_id")
        .with_row_index("_pos")  # position in (terminal, time, id) order
    )
    starts = fraud.cast(pl.Boolean) & ~fraud.shift(1).over("terminal_id").fill_null(0).cast(
        pl.Boolean
    )
    known = (
        rows.with_columns(
            _run=pl.when(starts).then(t).forward_fill().over("terminal_id"),
            _run_pos=pl.when(starts).then(pl.col("_pos")).forward_fill().over("terminal_id"),
        )
        .with_columns(
            _run=pl.when(fraud == 1).then(pl.col("_run")),
            _run_pos=pl.when(fraud == 1).then(pl.col("_run_pos")),
        )
        .group_by("terminal_id", "tx_time_seconds", maintain_order=True)
        .last()
        .select(
            "terminal_id",
            pl.col("tx_time_seconds").alias("_known_t"),
            "_run",
            "_run_pos",
            pl.col("_pos").alias("_known_pos"),
        )
        .sort("_known_t")
    )
    first_in_window = (
        rows.group_by("terminal_id", "tx_time_seconds", maintain_order=True)
        .first()
        .select(
            "terminal_id",
            pl.col("tx_time_seconds").alias("_first_t"),
            pl.col("_pos").alias("_first_pos"),
        )
        .sort("_first_t")
    )
    looked_up = (
        rows.with_columns(_upto=t - delay, _after=t - delay - width + 1)
        .sort("_upto")
        .join_asof(
            known,
            left_on="_upto",
            right_on="_known_t",
            by="terminal_id",
            strategy="backward",
            check_sortedness=False,
        )
        .sort("_after")
        .join_asof(
            first_in_window,
            left_on="_after",
            right_on="_first_t",
            by="terminal_id",
            strategy="forward",
            check_sortedness=False,
        )
        .with_columns(
            _active=pl.col("_run").is_not_null() & (pl.col("_known_t") >= pl.col("_after"))
        )
        .with_columns(
            _seconds=pl.when("_active")
            .then(t - pl.max_horizontal("_run", "_first_t"))
            .otherwise(0),
            _from=pl.when("_active")
            .then(pl.max_horizontal("_run_pos", "_first_pos"))
            .otherwise(0)
            .cast(pl.Int64),
            _to=pl.when("_active").then(pl.col("_known_pos") + 1).otherwise(0).cast(pl.Int64),
        )
        .sort("_row")
    )
    # numpy's true division, correctly rounded like Python's (the scoring service's): Polars
    # may multiply by the reciprocal instead, one ulp away.
    seconds = looked_up["_seconds"].cast(pl.Int64).to_numpy()
    active = looked_up["_active"].to_numpy()
    min_amount = np.zeros(len(active), dtype=np.float64)
    if active.any():
        amounts = np.append(rows["tx_amount"].to_numpy().astype(np.float64), 0.0)
        bounds = np.column_stack(
            (looked_up["_from"].to_numpy()[active], looked_up["_to"].to_numpy()[active])
        )
        # Each (from, to) pair: reduceat gives min(amounts[from:to]) at the even places.
        min_amount[active] = np.minimum.reduceat(amounts, bounds.ravel())[::2]
    return {
        "terminal_fraud_run_days": pl.Series("terminal_fraud_run_days", seconds / SECONDS_PER_DAY),
        "terminal_fraud_run_min_amount": pl.Series("terminal_fraud_run_min_amount", min_amount),
    }
