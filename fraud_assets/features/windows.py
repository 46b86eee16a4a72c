"""Window counts, means and risks of `spec`, one entity (customer or terminal) at a time.

Each entity's rows are grouped together in (time, id) order, where every window is a contiguous
run ending at (or, for terminals, before) the row; the compiled scan (`_window_scan`) walks them
once with one forward-moving start pointer per window and writes the results back in frame order.
Both sides release the GIL, so `polars_engine` runs them in two threads.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fraud_assets.features._window_scan import customer_windows as _customer_scan
from fraud_assets.features._window_scan import customer_windows_exact as _customer_scan_exact
from fraud_assets.features._window_scan import group_rows as _group_rows
from fraud_assets.features._window_scan import prior_flag_counts as _prior_flag_scan
from fraud_assets.features._window_scan import terminal_fraud_runs as _terminal_run_scan
from fraud_assets.features._window_scan import terminal_windows as _terminal_scan
from fraud_assets.features.spec import (
    CARD_HISTORY_FEATURES,
    LABEL_DELAY_DAYS,
    OUTLIER_RATIO,
    OWN_RATIO_WINDOW_DAYS,
    PRIOR_OUTLIER_WINDOW_DAYS,
    RUN_WINDOW_DAYS,
    SECONDS_PER_DAY,
    WINDOWS_DAYS,
)

_WIDTHS = np.array([w * SECONDS_PER_DAY for w in WINDOWS_DAYS], dtype=np.int64)


# Amounts are scaled to exact integers by the smallest of these powers of ten that fits them all.
_EXACT_DECIMALS = range(0, 7)
_EXACT_LIMIT = 2**62  # |scaled amount| * rows below this: no window sum can overflow int64


def _sorted_by(frame: pl.DataFrame, entity: str, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """(order, ids, seconds, values) grouped by entity; `order[i]` is the frame row of row i.

    The frame is in (time, id) order and grouping keeps each entity's rows in frame order, so
    every entity's rows come in (time, id) order.
    """
    n = frame.height
    grouped = (
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=values.dtype),
    )
    _group_rows(
        frame[entity].to_numpy().astype(np.int64, copy=False),
        frame["tx_time_seconds"].to_numpy().astype(np.int64, copy=False),
        values,
        *grouped,
    )
    return grouped


def exact_scale(amount: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(amount * 10**k as int64, 10**k) for the smallest k that makes every amount an integer
    exactly, or None when none up to 10**6 does (or the sums could overflow).

    Exact window sums make every mean independent of where a customer's history starts, so a
    batch's features are the same bits alone or inside a range (docs/features.md).
    """
    for k in _EXACT_DECIMALS:
        scale = float(10**k)
        scaled = np.rint(amount * scale)
        if np.array_equal(scaled / scale, amount):
            peak = float(np.abs(scaled).max()) if scaled.size else 0.0
            if peak * max(scaled.size, 1) >= _EXACT_LIMIT:
                return None
            return scaled.astype(np.int64), scale
    return None


def customer_windows(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """customer_nb_tx_{w}d and customer_avg_amount_{w}d over (t - w, t], this row included,
    and the card's earlier outliers (customer_prior_outliers_7d) from the 30-day means."""
    amount = frame["tx_amount"].to_numpy().astype(np.float64, copy=False)
    exact = exact_scale(amount)
    if exact is None:  # amounts beyond 6 decimals: plain double sums
        order, ids, seconds, values = _sorted_by(frame, "customer_id", amount)
        counts, means = _outputs(len(order))
        _customer_scan(order, ids, seconds, values, _WIDTHS, counts, means, np.empty(len(order)))
    else:
        scaled, scale = exact
        order, ids, seconds, values = _sorted_by(frame, "customer_id", scaled)
        counts, means = _outputs(len(order))
        scratch = np.empty(len(order), dtype=np.int64)
        _customer_scan_exact(order, ids, seconds, values, scale, _WIDTHS, counts, means, scratch)
    ratio = amount / means[WINDOWS_DAYS.index(OWN_RATIO_WINDOW_DAYS)]  # as the feature is
    flags = (ratio > OUTLIER_RATIO).astype(np.int64)[order]
    prior = np.empty(len(order), dtype=np.int64)
    width = PRIOR_OUTLIER_WINDOW_DAYS * SECONDS_PER_DAY
    _prior_flag_scan(order, ids, seconds, flags, width, prior, np.empty(len(order) + 1, np.int64))
    (name,) = CARD_HISTORY_FEATURES
    return _named(counts, "customer_nb_tx_{}d", means, "customer_avg_amount_{}d") | {name: prior}


def terminal_windows(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """terminal_nb_tx_{w}d and terminal_risk_{w}d over (t - d - w, t - d], d the label delay,
    and the terminal's fraud run in (t - d - R, t - d]: terminal_fraud_run_days and
    terminal_fraud_run_min_amount. One grouping by terminal serves both scans."""
    fraud = frame["tx_fraud"].to_numpy().astype(np.int64, copy=False)
    order, ids, seconds, fraud = _sorted_by(frame, "terminal_id", fraud)
    n = len(order)
    counts, risks = _outputs(n)
    delay = LABEL_DELAY_DAYS * SECONDS_PER_DAY
    _terminal_scan(
        order, ids, seconds, fraud, delay, _WIDTHS, counts, risks, np.empty(n + 1, dtype=np.int64)
    )
    amount = frame["tx_amount"].to_numpy().astype(np.float64, copy=False)[order]
    run_days, run_min_amount = np.empty(n), np.empty(n)
    width = RUN_WINDOW_DAYS * SECONDS_PER_DAY
    scratch = np.empty(3 * n, dtype=np.int64)
    _terminal_run_scan(
        order, ids, seconds, fraud, amount, delay, width, float(SECONDS_PER_DAY),
        run_days, run_min_amount, scratch,
    )  # fmt: skip
    return _named(counts, "terminal_nb_tx_{}d", risks, "terminal_risk_{}d") | {
        "terminal_fraud_run_days": run_days,
        "terminal_fraud_run_min_amount": run_min_amount,
    }


def terminal_run_min_ratio(frame: pl.DataFrame, mean_30d: np.ndarray) -> np.ndarray:
    """terminal_fraud_run_min_ratio: the terminal's fraud-run walk of `terminal_windows` over
    each row's own customer_amount_ratio_30d (`mean_30d`: customer_avg_amount_30d in frame
    order) instead of its amount."""
    amount = frame["tx_amount"].to_numpy().astype(np.float64, copy=False)
    ratio = amount / mean_30d  # the feature's own division
    fraud = frame["tx_fraud"].to_numpy().astype(np.int64, copy=False)
    order, ids, seconds, fraud = _sorted_by(frame, "terminal_id", fraud)
    n = len(order)
    run_days, run_min = np.empty(n), np.empty(n)
    _terminal_run_scan(
        order, ids, seconds, fraud, np.ascontiguousarray(ratio[order], dtype=np.float64),
        LABEL_DELAY_DAYS * SECONDS_PER_DAY, RUN_WINDOW_DAYS * SECONDS_PER_DAY,
        float(SECONDS_PER_DAY), run_days, run_min, np.empty(3 * n, dtype=np.int64),
    )  # fmt: skip
    return run_min


def _outputs(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts and values, one row per window: each window's column is contiguous."""
    shape = (len(_WIDTHS), rows)
    return np.empty(shape, dtype=np.int64), np.empty(shape, dtype=np.float64)


def _named(counts: np.ndarray, count: str, values: np.ndarray, value: str) -> dict:
    out = {}
    for j, w in enumerate(WINDOWS_DAYS):
        out[count.format(w)] = counts[j]
        out[value.format(w)] = values[j]
    return out
