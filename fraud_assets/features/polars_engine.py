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
    CUSTOMER_FEATURES,
    LABEL_DELAY_DAYS,
    NIGHT_LAST_HOUR,
    RATIO_WINDOWS_DAYS,
    RUN_WINDOW_DAYS,
    SECONDS_PER_DAY,
    TERMINAL_FEATURES,
)
from fraud_assets.features.windows import customer_windows, terminal_windows


def compute_features(clean: pl.DataFrame) -> pl.DataFrame:
    """Features for every row of `clean` (which must hold the look-back history it needs), in
    (time, id) order."""
    frame = clean if _in_time_order(clean) else clean.sort("tx_time_seconds", "transaction_id")
    # The two sides share nothing and numpy releases the GIL: one core each.
    with ThreadPoolExecutor(max_workers=2) as pool:
        customers = pool.submit(customer_windows, frame)
        terminals = pool.submit(terminal_windows, frame)
        columns = {**customers.result(), **terminals.result()}
    return frame.with_columns(
        tx_during_weekend=(pl.col("tx_datetime").dt.weekday() >= 6).cast(pl.Int8),
        tx_during_night=(pl.col("tx_datetime").dt.hour() <= NIGHT_LAST_HOUR).cast(pl.Int8),
        **{name: columns[name] for name in CUSTOMER_FEATURES + TERMINAL_FEATURES},
    ).with_columns(
        **{
            f"customer_amount_ratio_{w}d": pl.col("tx_amount") / pl.col(f"customer_avg_amount_{w}d")
            for w in RATIO_WINDOWS_DAYS
        },
        **terminal_fraud_runs(frame),
    )


def terminal_fraud_runs(frame: pl.DataFrame) -> dict[str, pl.Series]:
    """`TERMINAL_RUN_FEATURES` of spec for every row of `frame` (in frame order).

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


def _in_time_order(frame: pl.DataFrame) -> bool:
    """Already sorted by (tx_time_seconds, transaction_id)? Cleaned batches usually are."""
    if frame.height < 2:
        return True
    seconds = frame["tx_time_seconds"].to_numpy()
    ids = frame["transaction_id"].to_numpy()
    step = np.diff(seconds)
    return bool(np.all((step > 0) | ((step == 0) & (ids[1:] > ids[:-1]))))
