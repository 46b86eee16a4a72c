"""Labels as they were known at a moment: investigator labels from when they were recorded,
batch labels after the delay (docs/models.md, "What is known when").

    labels_known_by(labels, known_by_seconds) -> DataFrame
        the newest label per transaction among those with known_at_seconds <= the moment
    gap_rows_with_known_labels(features, labels, gap_start_seconds, known_by_seconds)
        the feature rows inside the label gap (tx_time_seconds >= gap_start_seconds, where the
        batch labels are not yet usable) that an investigator label known by the moment covers,
        with `tx_fraud` set from that label; every other gap row is left out

A training run or a backtest step "as of" a moment passes that moment: no label recorded after
it can enter (tests/test_feedback_features.py, tests/test_known_labels.py).
"""

from __future__ import annotations

import polars as pl

LABEL = "tx_fraud"


def labels_known_by(labels: pl.DataFrame, known_by_seconds: int) -> pl.DataFrame:
    """The verdict in force at the moment: newest (known_at, order) per transaction."""
    ordered = labels.with_row_index("_seq")
    return (
        ordered.filter(pl.col("known_at_seconds") <= known_by_seconds)
        .sort("transaction_id", "known_at_seconds", "_seq")
        .group_by("transaction_id", maintain_order=True)
        .last()
        .drop("_seq")
    )


def gap_rows_with_known_labels(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    gap_start_seconds: int,
    known_by_seconds: int,
) -> pl.DataFrame:
    known = labels_known_by(labels, known_by_seconds).select(
        "transaction_id", pl.col("fraud").cast(pl.Int8).alias("_known")
    )
    gap = features.filter(
        (pl.col("tx_time_seconds") >= gap_start_seconds)
        & (pl.col("tx_time_seconds") <= known_by_seconds)
    )
    return (
        gap.join(known, on="transaction_id", how="inner")
        .with_columns(pl.col("_known").cast(features.schema.get(LABEL, pl.Int8)).alias(LABEL))
        .drop("_known")
    )
