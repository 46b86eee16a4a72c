"""Feedback features: what investigators and the bank have confirmed, usable the moment it is
known (docs/features.md, "Feedback features"). The batch definition; the online state that
computes the same numbers is `serving/feedback_state.py`.

A label is (transaction, card, terminal, transaction time, fraud, known_at, seq). `known_at` is
the data clock when the label was recorded: the newest transaction time the service held
(seconds since the origin), so it is comparable with transaction times. `seq` orders labels
recorded at the same clock (the order they were appended to the label log).

For the transaction at time t, with w in FEEDBACK_WINDOWS_DAYS:
    the labels known strictly before t (known_at < t); of those, the newest per transaction
    (largest (known_at, seq)): a correction replaces the earlier verdict from when it is known.
    card_confirmed_fraud_{w}d     = labelled transactions of this card still marked fraud, with
                                    transaction time in (t - w*86400, t]
    terminal_confirmed_fraud_{w}d = the same at this terminal.
Strictly before: a label recorded after a transaction was scored always has known_at >= that
transaction's time, so online and batch agree on every transaction, late ones included.

For training (the `feedback_features` asset, one table per batch beside transaction_features):
    label_events(log)                           the label log's records as label events
    batch_feedback_features(clean, events, origin)
        transaction_id, tx_datetime and FEEDBACK_FEATURES for a batch's clean rows, their times
        counted from the scoring service's origin (as known_at is)
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from fraud_assets.features.spec import SECONDS_PER_DAY

FEEDBACK_WINDOWS_DAYS: tuple[int, ...] = (1, 7)
FEEDBACK_FEATURES = [
    f"{who}_confirmed_fraud_{w}d" for who in ("card", "terminal") for w in FEEDBACK_WINDOWS_DAYS
]
FEEDBACK_RETENTION_SECONDS = max(FEEDBACK_WINDOWS_DAYS) * SECONDS_PER_DAY
LABEL_EVENT_COLUMNS = (
    "transaction_id",
    "customer_id",
    "terminal_id",
    "tx_time_seconds",
    "fraud",
    "known_at_seconds",
    "seq",
)


def feedback_features(transactions: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """FEEDBACK_FEATURES for each row of `transactions` (transaction_id, customer_id,
    terminal_id, tx_time_seconds), in the rows' order, from label events (LABEL_EVENT_COLUMNS;
    `seq` may be omitted: then the row order is the order they were recorded)."""
    if "seq" not in labels.columns:
        labels = labels.with_row_index("seq")
    events = labels.select(
        pl.col("transaction_id").cast(pl.Int64).alias("l_id"),
        pl.col("customer_id").cast(pl.Int64).alias("l_card"),
        pl.col("terminal_id").cast(pl.Int64).alias("l_term"),
        pl.col("tx_time_seconds").cast(pl.Int64).alias("l_time"),
        pl.col("fraud").cast(pl.Boolean).alias("l_fraud"),
        pl.col("known_at_seconds").cast(pl.Int64).alias("l_known"),
        pl.col("seq").cast(pl.Int64).alias("l_seq"),
    )
    txs = transactions.select(
        pl.col("transaction_id").cast(pl.Int64),
        pl.col("customer_id").cast(pl.Int64),
        pl.col("terminal_id").cast(pl.Int64),
        pl.col("tx_time_seconds").cast(pl.Int64),
    ).with_row_index("_row")
    out = txs.select("_row")
    for who, key, lkey in (
        ("card", "customer_id", "l_card"),
        ("terminal", "terminal_id", "l_term"),
    ):
        pairs = (
            txs.join(events, left_on=key, right_on=lkey, how="inner")
            .filter(pl.col("l_known") < pl.col("tx_time_seconds"))
            .sort("_row", "l_id", "l_known", "l_seq")
            .group_by("_row", "l_id", maintain_order=True)
            .last()  # the verdict in force at t
            .filter(pl.col("l_fraud"))
        )
        counts = pairs.group_by("_row").agg(
            (
                (pl.col("l_time") > pl.col("tx_time_seconds") - w * SECONDS_PER_DAY)
                & (pl.col("l_time") <= pl.col("tx_time_seconds"))
            )
            .sum()
            .cast(pl.Int64)
            .alias(f"{who}_confirmed_fraud_{w}d")
            for w in FEEDBACK_WINDOWS_DAYS
        )
        out = out.join(counts, on="_row", how="left")
    return out.sort("_row").select(pl.col(FEEDBACK_FEATURES).fill_null(0).cast(pl.Int64))


def label_events(log: pl.DataFrame) -> pl.DataFrame:
    """The label log (`serving.labels.read_label_log`, oldest first) as label events, `seq`
    the log's order. Records written before `known_at_seconds` existed are left out: when
    they became known is not recorded, so no transaction may use them."""
    return (
        log.filter(pl.col("known_at_seconds").is_not_null())
        .with_row_index("seq")
        .select(LABEL_EVENT_COLUMNS)
    )


def batch_feedback_features(
    clean: pl.DataFrame, events: pl.DataFrame, origin: dt.datetime
) -> pl.DataFrame:
    """FEEDBACK_FEATURES of a batch's clean rows (transaction_id, customer_id, terminal_id,
    tx_datetime), keyed by transaction_id and dated by tx_datetime."""
    since = (pl.col("tx_datetime") - pl.lit(origin)).dt.total_seconds().cast(pl.Int64)
    rows = clean.select(
        "transaction_id", "customer_id", "terminal_id", "tx_datetime",
        since.alias("tx_time_seconds"),
    )  # fmt: skip
    values = feedback_features(rows, events)
    return pl.concat([rows.select("transaction_id", "tx_datetime"), values], how="horizontal")
