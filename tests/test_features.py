"""Baseline features match docs/features.md exactly, window edges included."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.batch.pipeline import clean_into_lake, features_for_batch
from fraud_assets.cleaning import CleaningConfig
from fraud_assets.features._window_scan import group_rows
from fraud_assets.features.polars_engine import compute_features
from fraud_assets.features.spec import (
    FEATURE_COLUMNS,
    LABEL_DELAY_DAYS,
    LOOKBACK_DAYS,
    WINDOWS_DAYS,
)
from fraud_assets.lake import Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.privacy import Pseudonymizer
from tests.support import HAND_ORIGIN, hand_rows, months_of_cards_and_frauds, write_days

DAY = 86_400
ORIGIN = HAND_ORIGIN


frame = hand_rows


def features_of(rows) -> dict[int, dict]:  # noqa: ANN001
    out = compute_features(frame(rows))
    return {r["transaction_id"]: r for r in out.iter_rows(named=True)}


def test_customer_windows_include_the_current_transaction_and_exclude_exactly_w_days_earlier():
    f = features_of(
        [
            (1, 10 * DAY, 7, 1, 10.0, 0),
            (2, 11 * DAY, 7, 1, 20.0, 0),  # exactly 1 day after #1: #1 is outside the 1-day window
            (3, 11 * DAY + 1, 7, 1, 60.0, 0),
            (4, 17 * DAY, 7, 1, 30.0, 0),  # exactly 7 days after #1: #1 outside the 7-day window
            (5, 11 * DAY, 8, 1, 99.0, 0),  # another customer never counts
        ]
    )
    assert (f[1]["customer_nb_tx_1d"], f[1]["customer_avg_amount_1d"]) == (1, 10.0)
    assert (f[2]["customer_nb_tx_1d"], f[2]["customer_avg_amount_1d"]) == (1, 20.0)
    assert (f[2]["customer_nb_tx_7d"], f[2]["customer_avg_amount_7d"]) == (2, 15.0)
    assert (f[3]["customer_nb_tx_1d"], f[3]["customer_avg_amount_1d"]) == (2, 40.0)
    assert (f[4]["customer_nb_tx_7d"], f[4]["customer_avg_amount_7d"]) == (3, 110.0 / 3)
    assert (f[4]["customer_nb_tx_30d"], f[4]["customer_avg_amount_30d"]) == (4, 30.0)
    assert f[4]["customer_amount_ratio_30d"] == pytest.approx(1.0)


def test_ties_within_a_second_count_in_id_order_as_they_arrive():
    f = features_of([(1, DAY, 7, 1, 10.0, 0), (2, DAY, 7, 1, 30.0, 0)])
    assert f[1]["customer_nb_tx_1d"] == 1 and f[2]["customer_nb_tx_1d"] == 2
    assert f[2]["customer_avg_amount_1d"] == 20.0


def test_terminal_risk_uses_only_labels_older_than_the_7_day_delay():
    t = 20 * DAY
    f = features_of(
        [
            (1, t - 7 * DAY, 1, 5, 1.0, 1),  # exactly at t - 7d: inside (t-8d, t-7d]
            (2, t - 8 * DAY, 2, 5, 1.0, 1),  # exactly at t - 8d: outside the 1-day window
            (3, t - 7 * DAY + 1, 3, 5, 1.0, 1),  # younger than the delay: never used
            (4, t - 10 * DAY, 4, 5, 1.0, 0),
            (5, t - 37 * DAY + 1, 4, 5, 1.0, 1),  # oldest second inside the 30-day window
            (6, t, 9, 5, 1.0, 0),  # the transaction being scored
            (7, t, 9, 6, 1.0, 0),  # a terminal with no history
        ]
    )
    assert (f[6]["terminal_nb_tx_1d"], f[6]["terminal_risk_1d"]) == (1, 1.0)
    assert (f[6]["terminal_nb_tx_7d"], f[6]["terminal_risk_7d"]) == (3, 2 / 3)
    assert (f[6]["terminal_nb_tx_30d"], f[6]["terminal_risk_30d"]) == (4, 3 / 4)
    assert (f[7]["terminal_nb_tx_30d"], f[7]["terminal_risk_30d"]) == (0, 0.0)


def test_prior_outliers_count_the_cards_earlier_outliers_of_the_week_never_the_current_one():
    small = [(i, i * 3600, 7, 1, 10.0, 0) for i in range(1, 5)]
    f = features_of(
        [
            *small,
            (5, 5 * 3600, 7, 1, 200.0, 0),  # 200 / (240 / 5) > 3: an outlier
            (6, 5 * 3600, 8, 1, 900.0, 0),  # another card's outlier never counts
            (7, 6 * 3600, 7, 1, 10.0, 0),
            (8, 5 * 3600 + 7 * DAY, 7, 1, 10.0, 0),  # exactly 7 days after #5: #5 is out
            (9, 5 * 3600 + 7 * DAY - 1, 7, 1, 10.0, 0),  # one second younger: #5 is in
        ]
    )
    assert f[5]["customer_amount_ratio_30d"] > 3
    assert f[5]["customer_prior_outliers_7d"] == 0  # itself never
    assert f[7]["customer_prior_outliers_7d"] == 1
    assert f[9]["customer_prior_outliers_7d"] == 1
    assert f[8]["customer_prior_outliers_7d"] == 0
    assert f[6]["customer_prior_outliers_7d"] == 0


@pytest.mark.parametrize("seed", [1, 2])
def test_a_batch_with_lookback_days_of_history_gets_the_features_of_the_whole_history(seed):
    """The look-back is long enough for every feature: the run's smallest ratio reads each
    fraud's own 30-day ratio up to 37 days back, which needs 30 more days of its card."""
    first = (LOOKBACK_DAYS + 30) * DAY  # the batch: the last 10 days
    rows = months_of_cards_and_frauds(days=LOOKBACK_DAYS + 40, first=first, seed=seed)
    whole = compute_features(frame(rows))
    alone = compute_features(frame([r for r in rows if r[1] >= first - LOOKBACK_DAYS * DAY]))
    columns = ["transaction_id", *FEATURE_COLUMNS]
    expected = whole.filter(whole["tx_time_seconds"] >= first).select(columns)
    got = alone.filter(alone["tx_time_seconds"] >= first).select(columns)
    assert expected.height > 300
    assert (expected["terminal_fraud_run_min_ratio"] > 0).sum() > 50
    assert got.equals(expected)


def test_weekend_and_night_flags():
    f = features_of(
        [
            (1, 5 * DAY + 6 * 3600 + 59 * 60, 1, 1, 1.0, 0),  # Saturday 06:59
            (2, 4 * DAY + 7 * 3600, 1, 1, 1.0, 0),  # Friday 07:00
            (3, 6 * DAY + 23 * 3600, 1, 1, 1.0, 0),  # Sunday 23:00
        ]
    )
    assert (f[1]["tx_during_weekend"], f[1]["tx_during_night"]) == (1, 1)
    assert (f[2]["tx_during_weekend"], f[2]["tx_during_night"]) == (0, 0)
    assert (f[3]["tx_during_weekend"], f[3]["tx_during_night"]) == (1, 0)


def spec_features_row_by_row(rows) -> dict[int, dict]:  # noqa: ANN001
    """docs/features.md read literally, one row at a time: slow, obviously right."""
    order = sorted(rows, key=lambda r: (r[1], r[0]))  # (time, id): arrival order
    out = {}
    ratio_30d = {}  # each transaction's own amount / its card's 30-day mean
    for position, (tx, t, customer, terminal, amount, _fraud) in enumerate(order):
        mine = [r for r in order[: position + 1] if r[2] == customer]
        month = [r for r in mine if r[1] > t - 30 * DAY]
        ratio_30d[tx] = amount / (sum(r[4] for r in month) / len(month))
        earlier_week = [r for r in mine[:-1] if r[1] > t - 7 * DAY]
        row = {"customer_prior_outliers_7d": sum(ratio_30d[r[0]] > 3 for r in earlier_week)}
        for w in WINDOWS_DAYS:
            window = [r for r in mine if r[1] > t - w * DAY]
            row[f"customer_nb_tx_{w}d"] = len(window)
            row[f"customer_avg_amount_{w}d"] = sum(r[4] for r in window) / len(window)
            end = t - LABEL_DELAY_DAYS * DAY
            labelled = [r for r in order if r[3] == terminal and end - w * DAY < r[1] <= end]
            row[f"terminal_nb_tx_{w}d"] = len(labelled)
            frauds = sum(r[5] for r in labelled)
            row[f"terminal_risk_{w}d"] = frauds / len(labelled) if labelled else 0.0
        out[tx] = row
    return out


# Times on a coarse grid so that ties and rows exactly w days apart are common.
transactions = st.lists(
    st.tuples(
        st.integers(0, 50).map(lambda half_days: half_days * DAY // 2),
        st.integers(1, 3),  # customer
        st.integers(1, 3),  # terminal
        st.sampled_from([1.0, 2.5, 10.0, 99.99]),
        st.integers(0, 1),  # fraud
    ),
    min_size=1,
    max_size=60,
).map(lambda rows: [(i + 1, *r) for i, r in enumerate(rows)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=transactions)
def test_every_window_feature_equals_the_spec_read_row_by_row(rows):  # noqa: ANN001
    expected = spec_features_row_by_row(rows)
    got = features_of(rows)
    for tx, row in expected.items():
        for name, value in row.items():
            assert got[tx][name] == pytest.approx(value, rel=1e-12), (tx, name)


def prior_outliers_by_polars(features: pl.DataFrame) -> pl.Series:
    """customer_prior_outliers_7d with Polars' rolling windows, the library the compiled scan
    (`_window_scan.prior_flag_counts`) replaces: each row's (t - 7d, t] window of its card, less
    the rows of its own second from itself on (those come after it, or are it)."""
    flagged = (pl.col("tx_amount") / pl.col("customer_avg_amount_30d") > 3).cast(pl.Int64)
    ordered = features.with_row_index("_row").sort(
        "customer_id", "tx_time_seconds", "transaction_id"
    )
    ordered = ordered.with_columns(_flag=flagged)
    window = ordered.rolling(
        index_column="tx_time_seconds", period=f"{7 * DAY}i", closed="right", group_by="customer_id"
    ).agg(pl.col("_flag").sum().alias("_in_window"))
    from_itself = pl.col("_flag").cum_sum(reverse=True).over("customer_id", "tx_time_seconds")
    return (
        ordered.select("_row", from_itself.alias("_from_itself"))
        .with_columns(prior=window["_in_window"] - pl.col("_from_itself"))
        .sort("_row")["prior"]
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=transactions)
def test_the_compiled_prior_outlier_scan_equals_polars_rolling_windows(rows):  # noqa: ANN001
    features = compute_features(frame(rows))
    expected = prior_outliers_by_polars(features)
    assert features["customer_prior_outliers_7d"].to_list() == expected.to_list()


@settings(max_examples=40, deadline=None)
@given(
    distinct=st.integers(1, 6_000),
    spread=st.sampled_from(["random", "consecutive", "strided"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_rows_are_grouped_by_entity_each_keeping_its_order(distinct, spread, seed):
    """The grouping under the window scans: a stable grouping, whatever the ids (past 2,048 of
    them its hash table grows)."""
    rng = np.random.default_rng(seed)
    keys = {
        "random": rng.integers(-(2**63), 2**63 - 1, distinct, dtype=np.int64),
        "consecutive": np.arange(distinct, dtype=np.int64) - distinct // 2,
        "strided": np.arange(distinct, dtype=np.int64) << 40,  # same low bits: probing is tested
    }[spread]
    rows = np.concatenate([np.arange(distinct), rng.integers(0, distinct, 3 * distinct)])
    entity = keys[rng.permutation(rows)]
    seconds = np.arange(len(entity), dtype=np.int64) * 7
    values = np.arange(len(entity), dtype=np.float64) / 2
    out = tuple(np.empty(len(entity), dtype=t) for t in (np.int64, np.int64, np.int64, np.float64))
    group_rows(entity, seconds, values, *out)
    order, grouped_entity, grouped_seconds, grouped_values = out
    assert sorted(order.tolist()) == list(range(len(entity)))
    assert (grouped_entity == entity[order]).all() and (grouped_seconds == seconds[order]).all()
    assert (grouped_values == values[order]).all()
    seen: dict[int, int] = {}  # entity -> its last row so far
    for i, (key, row) in enumerate(zip(grouped_entity.tolist(), order.tolist(), strict=True)):
        if key in seen:
            assert grouped_entity[i - 1] == key, "an entity's rows are not together"
            assert row > seen[key], "an entity's rows are out of order"
        seen[key] = row


def test_featurising_from_the_clean_table_in_memory_equals_reading_it_back(tmp_path):
    landing = tmp_path / "landing"
    write_days(landing, days=3)
    lake = Lake(*filesystem_for(str(tmp_path / "lake")))
    config = CleaningConfig(origin_date=dt.date(2024, 3, 1))
    results = {
        day: clean_into_lake(lake, landing / f"{day}.txt", day, Pseudonymizer(b"k"), config)
        for day in ("2024-03-01", "2024-03-02", "2024-03-03")
    }
    from_lake = features_for_batch(lake, "2024-03-03")
    from_memory = features_for_batch(lake, "2024-03-03", batch_clean=results["2024-03-03"].clean)
    assert from_memory.height > 0
    assert from_memory.equals(from_lake)
    # History from the earlier batches is used either way: day 3 sees day 1-2 transactions.
    assert (from_memory["customer_nb_tx_7d"] > 1).any()
