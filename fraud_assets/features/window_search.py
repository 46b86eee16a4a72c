"""Window scans by binary search (numpy): same inputs, outputs and arithmetic as `window_scan`.

Rows are in (entity, time, id) order; a window's first row is found with one `searchsorted` per
row and window on an int64 key (entity index above bit 40, seconds below). O(n log n), but with
no start-up cost, so it is the faster choice below a few million rows (see `polars_engine`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

_TIME_BITS = 40  # 2**40 s ≈ 35 000 years


def _keys(ids: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    group = np.zeros(len(ids), dtype=np.int64)  # 0, 1, 2… per entity
    np.cumsum(ids[1:] != ids[:-1], out=group[1:])
    base = group << _TIME_BITS
    return base, base + seconds


def customer_windows(
    order: np.ndarray, ids: np.ndarray, seconds: np.ndarray, amount: np.ndarray, widths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    n, k = len(order), len(widths)
    base, keys = _keys(ids, seconds)
    # Running sums restart for each customer, as in the compiled scan.
    inclusive = (
        pl.DataFrame({"customer": base, "amount": amount})
        .select(pl.col("amount").cum_sum().over("customer"))
        .to_series()
        .to_numpy()
    )
    counts = np.empty((n, k), dtype=np.int64)
    means = np.empty((n, k), dtype=np.float64)
    current = np.arange(n)
    for j, width in enumerate(widths):
        start = np.searchsorted(keys, keys - width, side="right")
        count = current + 1 - start
        counts[order, j] = count
        means[order, j] = (inclusive - (inclusive[start] - amount[start])) / count
    return counts, means


def terminal_windows(
    order: np.ndarray,
    ids: np.ndarray,
    seconds: np.ndarray,
    fraud: np.ndarray,
    delay: int,
    widths: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    n, k = len(order), len(widths)
    _, keys = _keys(ids, seconds)
    cum_fraud = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(fraud, out=cum_fraud[1:])
    end = np.searchsorted(keys, keys - delay, side="right")
    counts = np.empty((n, k), dtype=np.int64)
    risks = np.empty((n, k), dtype=np.float64)
    for j, width in enumerate(widths):
        start = np.searchsorted(keys, keys - delay - width, side="right")
        count = end - start
        frauds = cum_fraud[end] - cum_fraud[start]
        counts[order, j] = count
        risks[order, j] = np.divide(frauds, count, out=np.zeros(n), where=count > 0)
    return counts, risks
