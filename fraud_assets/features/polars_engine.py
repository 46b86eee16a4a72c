"""The feature definitions of `spec` computed in process with Polars and numpy.

Windows are counted as differences of cumulative sums: sort each entity's transactions by
(time, id); the window's first row is found by binary search on (entity, time). Exact for any
timestamps, O(n log n), and the same arithmetic the Spark engine expresses with window frames.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fraud_assets.features.spec import (
    LABEL_DELAY_DAYS,
    NIGHT_LAST_HOUR,
    SECONDS_PER_DAY,
    WINDOWS_DAYS,
)

_TIME_BITS = 40  # 2**40 s ≈ 35 000 years: entity index above, seconds below, in one int64 key


def compute_features(clean: pl.DataFrame) -> pl.DataFrame:
    """Features for every row of `clean` (which must hold the look-back history it needs)."""
    frame = clean.sort(["tx_time_seconds", "transaction_id"]).with_columns(
        tx_during_weekend=(pl.col("tx_datetime").dt.weekday() >= 6).cast(pl.Int8),
        tx_during_night=(pl.col("tx_datetime").dt.hour() <= NIGHT_LAST_HOUR).cast(pl.Int8),
    )
    frame = _customer_windows(frame)
    frame = _terminal_windows(frame)
    return frame.with_columns(
        customer_amount_ratio_30d=pl.col("tx_amount") / pl.col("customer_avg_amount_30d")
    )


def _sorted_keys(frame: pl.DataFrame, entity: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order rows by (entity, time, id); return that order, its int64 keys and time.

    `frame` is already in (time, id) order, so a stable sort on the entity alone gives the full
    order: about four times faster than sorting on three keys.
    """
    order = frame.select(pl.arg_sort_by(entity, maintain_order=True)).to_series().to_numpy()
    ids = frame[entity].to_numpy()[order]
    group = np.zeros(len(ids), dtype=np.int64)
    np.cumsum(ids[1:] != ids[:-1], out=group[1:])  # 0, 1, 2… per entity, in sorted order
    seconds = frame["tx_time_seconds"].to_numpy()[order]
    return order, (group << _TIME_BITS) + seconds, seconds


def _window_start(
    keys: np.ndarray, entity_base: np.ndarray, upto_seconds: np.ndarray
) -> np.ndarray:
    """Position of the first row of the same entity with time > upto_seconds."""
    return np.searchsorted(keys, entity_base + upto_seconds, side="right")


def _customer_windows(frame: pl.DataFrame) -> pl.DataFrame:
    order, keys, seconds = _sorted_keys(frame, "customer_id")
    base = keys - seconds
    amount = frame["tx_amount"].to_numpy()[order]
    # Running sums restart for each customer: a global running sum would carry a rounding error
    # that grows with the whole dataset into every customer's averages.
    inclusive = (
        pl.DataFrame({"customer": keys >> _TIME_BITS, "amount": amount})
        .select(pl.col("amount").cum_sum().over("customer"))
        .to_series()
        .to_numpy()
    )
    exclusive = inclusive - amount  # the customer's sum before each row
    current = np.arange(len(keys))
    columns = {}
    for w in WINDOWS_DAYS:
        start = _window_start(keys, base, seconds - w * SECONDS_PER_DAY)
        count = current + 1 - start
        total = inclusive[current] - exclusive[start]
        columns[f"customer_nb_tx_{w}d"] = count
        columns[f"customer_avg_amount_{w}d"] = total / count
    return _attach(frame, columns, order)


def _terminal_windows(frame: pl.DataFrame) -> pl.DataFrame:
    order, keys, seconds = _sorted_keys(frame, "terminal_id")
    base = keys - seconds
    fraud = frame["tx_fraud"].to_numpy().astype(np.int64)[order]
    cum_fraud = np.concatenate([[0], np.cumsum(fraud)])
    end_at = seconds - LABEL_DELAY_DAYS * SECONDS_PER_DAY
    end = _window_start(keys, base, end_at)
    columns = {}
    for w in WINDOWS_DAYS:
        start = _window_start(keys, base, end_at - w * SECONDS_PER_DAY)
        count = end - start
        frauds = cum_fraud[end] - cum_fraud[start]
        risk = np.divide(frauds, count, out=np.zeros(len(count)), where=count > 0)
        columns[f"terminal_nb_tx_{w}d"] = count
        columns[f"terminal_risk_{w}d"] = risk
    return _attach(frame, columns, order)


def _attach(frame: pl.DataFrame, sorted_columns: dict, order: np.ndarray) -> pl.DataFrame:
    """Put columns computed in sorted order back in frame order, all in one gather."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return frame.with_columns(pl.DataFrame(sorted_columns).select(pl.all().gather(inverse)))
