"""Training and backtests use a label only from the moment it was known."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.lake import FEATURES, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.modeling.backtest import backtest
from fraud_assets.modeling.known_labels import gap_rows_with_known_labels, labels_known_by
from fraud_assets.modeling.training import TrainingConfig
from tests.support import FEATURE_LAKE_START

DAY_ = dt.timedelta(days=1)

label_rows = st.lists(
    st.tuples(st.integers(0, 20), st.booleans(), st.integers(0, 1000)),  # id, fraud, known_at
    max_size=60,
)


def frame(rows) -> pl.DataFrame:
    return pl.DataFrame(
        [{"transaction_id": i, "fraud": f, "known_at_seconds": k} for i, f, k in rows],
        schema={"transaction_id": pl.Int64, "fraud": pl.Boolean, "known_at_seconds": pl.Int64},
    )


@settings(max_examples=300, deadline=None)
@given(rows=label_rows, moment=st.integers(0, 1000))
def test_labels_recorded_after_the_moment_change_nothing(rows, moment) -> None:
    before = labels_known_by(frame(rows), moment)
    assert (before["known_at_seconds"] <= moment).all()
    later = [(i, not f, moment + 1 + k) for i, f, k in rows]  # contrary verdicts, later
    after = labels_known_by(frame(rows + later), moment)
    assert after.equals(before)


@settings(max_examples=200, deadline=None)
@given(rows=label_rows, moment=st.integers(0, 1000), gap=st.integers(0, 1000))
def test_gap_rows_carry_only_labels_known_by_the_moment(rows, moment, gap) -> None:
    features = pl.DataFrame(
        {
            "transaction_id": list(range(21)),
            "tx_time_seconds": [50 * i for i in range(21)],
            "tx_fraud": [0] * 21,
        }  # fmt: skip
    ).with_columns(pl.col("tx_fraud").cast(pl.Int8))
    labels = frame(rows)
    out = gap_rows_with_known_labels(features, labels, gap, moment)
    known = {r["transaction_id"]: r["fraud"] for r in labels_known_by(labels, moment).to_dicts()}
    assert set(out["transaction_id"]) <= set(known)
    for r in out.to_dicts():
        assert gap <= r["tx_time_seconds"] <= moment
        assert r["tx_fraud"] == int(known[r["transaction_id"]])
    # A transaction with a known label inside the gap and up to the moment is never dropped.
    expected = {i for i in known if gap <= 50 * i <= moment}
    assert set(out["transaction_id"]) == expected


@pytest.mark.slow
def test_the_backtest_uses_an_investigator_label_only_once_known(feature_lake) -> None:
    """`fraud backtest --labels-dir`: label-gap rows labelled by investigators join a fold's
    training only when known by its first morning; a card confirmed fraud before a test day
    counts as known compromised from that day."""
    features = Lake(*filesystem_for(str(feature_lake / "lake"))).read_table(FEATURES)
    start = FEATURE_LAKE_START + dt.timedelta(days=30)
    date = pl.col("tx_datetime").dt.date()
    gap = features.filter(date.is_between(start - dt.timedelta(days=7), start - DAY_))
    wrong = gap.filter(pl.col("tx_fraud") == 0).sort("transaction_id").head(40)  # called fraud
    clock = int(
        (dt.datetime.combine(start, dt.time()) - features["tx_datetime"][0]).total_seconds()
        + features["tx_time_seconds"][0]
    )  # the features' clock at the first test morning

    def run(known_at: pl.Expr):  # noqa: ANN202 - the one fold
        labels = wrong.select(
            "transaction_id", "customer_id", "terminal_id", "tx_time_seconds",
            pl.lit(True).alias("fraud"), known_at.cast(pl.Int64).alias("known_at_seconds"),
        )  # fmt: skip
        config = TrainingConfig(iterations=60)
        return backtest(features, 14, 7, start, 2, 1, config, labels=labels)[0]

    plain = backtest(features, 14, 7, start, 2, 1, TrainingConfig(iterations=60))[0]
    later = run(pl.lit(clock + 10))  # recorded just after the morning of the first test day
    assert later.investigator_rows == 0
    assert later.predictions["score"].equals(plain.predictions["score"])
    known = run(pl.col("tx_time_seconds"))  # recorded as the transactions happened
    assert known.investigator_rows == wrong.height
    assert not known.predictions["score"].equals(plain.predictions["score"])

    # Known compromised: from the first test day when known before it, the next day otherwise.
    cards = set(wrong["customer_id"])
    test = features.filter(date.is_between(start, start + DAY_)).select(
        "transaction_id", "customer_id", date.alias("d")
    )
    for fold in (later, known):
        flagged = fold.predictions.join(test, on="transaction_id").filter(
            pl.col("customer_id").is_in(list(cards))
        )
        assert flagged.height > 0
        first_day = flagged.filter(pl.col("d") == start)["known_compromised"]
        second_day = flagged.filter(pl.col("d") == start + DAY_)["known_compromised"]
        assert second_day.all()
        if fold is known:
            assert first_day.all()
    excluded_plain = plain.excluded_rows
    assert known.excluded_rows > excluded_plain
