"""Training and backtests use a label only from the moment it was known."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.modeling.known_labels import gap_rows_with_known_labels, labels_known_by

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
