"""The newest feature rows with the labels known today: what training and the review read.

No Dagster here: an empty lake is a `NoFeatureBatchesError`, which the assets turn into a
`dg.Failure` and the command line into a message.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from fraud_assets.lake import FEATURES, FEEDBACK, Lake


class NoFeatureBatchesError(LookupError):
    """The lake holds no committed feature batch yet."""


def latest_features(lake: Lake, days: int) -> tuple[pl.DataFrame, dt.date]:
    """The feature rows of the newest `days` dates, and the newest date. Labels the scoring
    service received (`fraud_labels`) replace the batch files' `tx_fraud` where they exist;
    the `feedback_features` table's columns are joined when it has rows in those dates."""
    from fraud_assets.online_state.publish import apply_labels, labels_table

    dates = lake.dates(FEATURES)
    if not dates:
        raise NoFeatureBatchesError(
            "No feature batches in the lake yet: ingest some batches first."
        )
    data_end = dates[-1]
    first = data_end - dt.timedelta(days=days - 1)
    features = lake.read_by_date(FEATURES, first, data_end)
    features = with_feedback_features(features, lake, first, data_end)
    return apply_labels(features, labels_table(lake, first, data_end)), data_end


def with_feedback_features(
    features: pl.DataFrame, lake: Lake, first: dt.date, last: dt.date
) -> pl.DataFrame:
    """FEEDBACK_FEATURES joined by transaction id (null for rows of batches whose feedback
    features were not computed); the rows unchanged when the table has none in first..last."""
    from fraud_assets.features.feedback import FEEDBACK_FEATURES

    if not any(first <= d <= last for d in lake.dates(FEEDBACK)):
        return features
    extra = lake.read_by_date(FEEDBACK, first, last, columns=["transaction_id", *FEEDBACK_FEATURES])
    extra = extra.unique("transaction_id", keep="last")
    return features.drop(FEEDBACK_FEATURES, strict=False).join(
        extra, on="transaction_id", how="left", maintain_order="left"
    )
