"""The feature definitions of `spec` computed in process with Polars and numpy or numba.

Sort each entity's transactions by (time, id); every window is then a contiguous run of rows,
and counts and sums are differences of running sums: the same arithmetic the Spark engine
expresses with window frames. The window starts come from a binary search (`window_search`) or,
for large frames, a compiled O(n) scan (`window_scan`); both give identical results.
"""

from __future__ import annotations

import threading

import numpy as np
import polars as pl

from fraud_assets.features.spec import (
    LABEL_DELAY_DAYS,
    NIGHT_LAST_HOUR,
    SECONDS_PER_DAY,
    WINDOWS_DAYS,
)

_WIDTHS = np.array([w * SECONDS_PER_DAY for w in WINDOWS_DAYS], dtype=np.int64)
# The compiled scan costs 1.2-2.5 s once per process (importing numba, loading the kernels cached
# on disk) and then saves 0.2-0.5 s per million rows: worth it from about this many rows ...
COMPILED_MIN_ROWS = 5_000_000
# ... or from this many when `warm_up_compiled` loaded it in the background, behind other work.
WARM_COMPILED_MIN_ROWS = 500_000

_warm_up: threading.Thread | None = None
_warm_up_lock = threading.Lock()


def warm_up_compiled() -> None:
    """Import numba and load the compiled kernels in a background thread; once per process.

    Call it before work that leaves a core free (parsing a batch, reading its history: Polars
    releases the GIL), so the next `compute_features` finds the kernels ready.
    """
    global _warm_up
    with _warm_up_lock:
        if _warm_up is None:
            _warm_up = threading.Thread(target=_load_kernels, name="numba-warm-up", daemon=True)
            _warm_up.start()


def _load_kernels() -> None:
    from fraud_assets.features import window_scan

    window_scan.warm()


def compute_features(clean: pl.DataFrame, compiled: bool | None = None) -> pl.DataFrame:
    """Features for every row of `clean` (which must hold the look-back history it needs).

    `compiled`: use the numba scan (True) or the binary search (False); None picks by size.
    """
    if compiled is None:
        warm = _warm_up is not None
        compiled = clean.height >= (WARM_COMPILED_MIN_ROWS if warm else COMPILED_MIN_ROWS)
    frame = clean.sort(["tx_time_seconds", "transaction_id"])
    # The frame is already in (time, id) order, so a stable sort on the entity alone gives the
    # (entity, time, id) order: about four times faster than sorting on three keys. Both sorts
    # run side by side in one select.
    orders = frame.select(
        customer=pl.arg_sort_by("customer_id", maintain_order=True),
        terminal=pl.arg_sort_by("terminal_id", maintain_order=True),
    )
    if compiled:
        if _warm_up is not None:
            _warm_up.join()  # after the sorts: they overlap the warm-up's last part
        from fraud_assets.features import window_scan as windows
    else:
        from fraud_assets.features import window_search as windows  # type: ignore[no-redef]
    # Fixed dtypes: each kernel is compiled (and cached on disk) for one signature only.
    seconds = _array(frame, "tx_time_seconds", np.int64)
    by_customer = orders["customer"].to_numpy().astype(np.int64)
    c_counts, c_means = windows.customer_windows(
        by_customer,
        _array(frame, "customer_id", np.int64)[by_customer],
        seconds[by_customer],
        _array(frame, "tx_amount", np.float64)[by_customer],
        _WIDTHS,
    )
    by_terminal = orders["terminal"].to_numpy().astype(np.int64)
    t_counts, t_risks = windows.terminal_windows(
        by_terminal,
        _array(frame, "terminal_id", np.int64)[by_terminal],
        seconds[by_terminal],
        _array(frame, "tx_fraud", np.int64)[by_terminal],
        LABEL_DELAY_DAYS * SECONDS_PER_DAY,
        _WIDTHS,
    )
    columns = {}
    for j, w in enumerate(WINDOWS_DAYS):
        columns[f"customer_nb_tx_{w}d"] = np.ascontiguousarray(c_counts[:, j])
        columns[f"customer_avg_amount_{w}d"] = np.ascontiguousarray(c_means[:, j])
    for j, w in enumerate(WINDOWS_DAYS):
        columns[f"terminal_nb_tx_{w}d"] = np.ascontiguousarray(t_counts[:, j])
        columns[f"terminal_risk_{w}d"] = np.ascontiguousarray(t_risks[:, j])
    return frame.with_columns(
        tx_during_weekend=(pl.col("tx_datetime").dt.weekday() >= 6).cast(pl.Int8),
        tx_during_night=(pl.col("tx_datetime").dt.hour() <= NIGHT_LAST_HOUR).cast(pl.Int8),
        **columns,
    ).with_columns(
        customer_amount_ratio_30d=pl.col("tx_amount") / pl.col("customer_avg_amount_30d")
    )


def _array(frame: pl.DataFrame, column: str, dtype: type) -> np.ndarray:
    return frame[column].to_numpy().astype(dtype, copy=False)
