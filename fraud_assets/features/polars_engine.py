"""The feature definitions of `spec` computed in process: Polars for the frame, a compiled scan
for the windows.

Each entity's transactions are taken in (time, id) order; every window is then a contiguous run
of them, and counts and sums are differences of running sums: the same arithmetic the Spark engine
expresses with window frames (`windows`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from fraud_assets.features.spec import (
    CARD_HISTORY_FEATURES,
    CUSTOMER_FEATURES,
    NIGHT_LAST_HOUR,
    OWN_RATIO_WINDOW_DAYS,
    RATIO_WINDOWS_DAYS,
    TERMINAL_FEATURES,
    TERMINAL_RUN_FEATURES,
)
from fraud_assets.features.windows import (
    customer_windows,
    terminal_run_min_ratio,
    terminal_windows,
)


def compute_features(clean: pl.DataFrame) -> pl.DataFrame:
    """Features for every row of `clean` (which must hold the look-back history it needs), in
    (time, id) order."""
    frame = clean if _in_time_order(clean) else clean.sort("tx_time_seconds", "transaction_id")
    # The two sides share nothing and numpy releases the GIL: one core each.
    with ThreadPoolExecutor(max_workers=2) as pool:
        customers = pool.submit(customer_windows, frame)
        terminals = pool.submit(terminal_windows, frame)
        columns = {**customers.result(), **terminals.result()}
    # The run's ratios need the 30-day means: after both sides.
    columns["terminal_fraud_run_min_ratio"] = terminal_run_min_ratio(
        frame, columns[f"customer_avg_amount_{OWN_RATIO_WINDOW_DAYS}d"]
    )
    return frame.with_columns(
        tx_during_weekend=(pl.col("tx_datetime").dt.weekday() >= 6).cast(pl.Int8),
        tx_during_night=(pl.col("tx_datetime").dt.hour() <= NIGHT_LAST_HOUR).cast(pl.Int8),
        **{name: columns[name] for name in CUSTOMER_FEATURES + TERMINAL_FEATURES},
    ).with_columns(
        **{
            f"customer_amount_ratio_{w}d": pl.col("tx_amount") / pl.col(f"customer_avg_amount_{w}d")
            for w in RATIO_WINDOWS_DAYS
        },
        **{name: columns[name] for name in TERMINAL_RUN_FEATURES + CARD_HISTORY_FEATURES},
    )


def _in_time_order(frame: pl.DataFrame) -> bool:
    """Already sorted by (tx_time_seconds, transaction_id)? Cleaned batches usually are."""
    if frame.height < 2:
        return True
    seconds = frame["tx_time_seconds"].to_numpy()
    ids = frame["transaction_id"].to_numpy()
    step = np.diff(seconds)
    return bool(np.all((step > 0) | ((step == 0) & (ids[1:] > ids[:-1]))))
