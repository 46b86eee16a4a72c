"""The per-column drift tests Evidently's `DataDriftPreset` applies, computed with numpy and scipy.

Evidently takes seconds per report and ~25 s to import on a cold machine; the verdict needs only
its statistics. This module reproduces, for each column, the test Evidently 0.7 picks by default
and its threshold (docs/decisions/drift-statistics.md), so a batch's verdict costs milliseconds
and Evidently is imported only to render the HTML report. `tests/test_drift_stats.py` holds the
two to the same tests, scores and verdicts.

Evidently's choice, after dropping NaN and infinities from each side:
- reference of more than 1 000 values: numerical columns with more than 5 distinct values (both
  sides together) get the Wasserstein distance normed by the reference's standard deviation;
  other numerical and all categorical columns the Jensen-Shannon distance. Both drift at >= 0.1.
- 1 000 values or fewer: numerical columns with more than 5 distinct values get the two-sample
  K-S test (drift when p <= 0.05); others the chi-square test (more than 2 distinct values,
  drift when p < 0.05) or the two-proportion Z-test (drift when p < 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WASSERSTEIN = "Wasserstein distance (normed)"
JENSEN_SHANNON = "Jensen-Shannon distance"
KS = "K-S p_value"
CHI_SQUARE = "chi-square p_value"
Z_TEST = "Z-test p_value"

THRESHOLDS = {WASSERSTEIN: 0.1, JENSEN_SHANNON: 0.1, KS: 0.05, CHI_SQUARE: 0.05, Z_TEST: 0.05}
_SMALL_REFERENCE = 1000  # at most this many reference values: p-value tests
_FEW_VALUES = 5  # at most this many distinct values: a categorical test even for numbers
_JS_HISTOGRAM_MIN_VALUES = 20  # more distinct reference values than this: histogram bins


@dataclass(frozen=True)
class ColumnTest:
    method: str
    score: float
    threshold: float
    drifted: bool


def column_drift(
    reference: np.ndarray, current: np.ndarray, categorical: bool, memo: dict | None = None
) -> ColumnTest:
    """The test Evidently would pick for this column, its score and its verdict.

    `memo`, a dict the caller keeps for one reference sample's column, remembers what depends on
    the reference alone (finite values, distinct values, sorted values, spread), so batches
    judged against the same reference pay only for their own side. Results are the same bits.
    """
    memo = {} if memo is None else memo
    if "finite" not in memo:
        memo["finite"] = _finite(reference)
    ref, cur = memo["finite"], _finite(current)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("cannot test drift on an empty column")
    distinct = _distinct_in_union(ref, cur, memo)
    method = _method(ref.size, distinct, categorical)
    if method == WASSERSTEIN:
        score = _wasserstein_memo(ref, cur, memo)
    else:
        score = _SCORERS[method](ref, cur, categorical)
    threshold = THRESHOLDS[method]
    if method in (WASSERSTEIN, JENSEN_SHANNON):
        drifted = score >= threshold
    elif method == KS:
        drifted = score <= threshold
    else:
        drifted = score < threshold
    return ColumnTest(method, float(score), threshold, bool(drifted))


def _distinct_in_union(ref: np.ndarray, cur: np.ndarray, memo: dict) -> int:
    """Distinct values of both sides together, the reference's distinct values remembered."""
    if ref.dtype.kind not in "biuf" or cur.dtype.kind not in "biuf":
        return int(np.unique(np.concatenate([ref, cur])).size)
    if "unique" not in memo:
        memo["unique"] = np.unique(ref)
    ours, theirs = memo["unique"], np.unique(cur)
    at = np.minimum(np.searchsorted(ours, theirs), ours.size - 1)
    shared = int(np.count_nonzero(ours[at] == theirs))
    return int(ours.size + theirs.size - shared)


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return values[np.isfinite(values)]
    return values


def _method(reference_size: int, distinct: int, categorical: bool) -> str:
    if reference_size <= _SMALL_REFERENCE:
        if not categorical and distinct > _FEW_VALUES:
            return KS
        return CHI_SQUARE if distinct > 2 else Z_TEST
    if not categorical and distinct > _FEW_VALUES:
        return WASSERSTEIN
    return JENSEN_SHANNON


def _wasserstein(ref: np.ndarray, cur: np.ndarray, _: bool) -> float:
    """First Wasserstein distance of the two samples, over the reference's std.

    The 1-D distance is the area between the two empirical CDFs: numpy alone, so the common
    case (references above 1 000 rows) never imports scipy (seconds in a fresh run process).
    """
    return _wasserstein_memo(ref, cur, {})


def _wasserstein_memo(ref: np.ndarray, cur: np.ndarray, memo: dict) -> float:
    if "sorted" not in memo:
        values = ref.astype(np.float64)
        memo["norm"] = max(float(np.std(values)), 0.001)
        memo["sorted"] = np.sort(values)
    return _area_between_cdfs(memo["sorted"], np.sort(cur.astype(np.float64))) / memo["norm"]


def _area_between_cdfs(u: np.ndarray, v: np.ndarray) -> float:
    """Area between the empirical CDFs of sorted `u` and `v`, merging instead of re-sorting.

    The current sample is placed into the reference by binary search (after equal reference
    values), so the union comes out sorted without sorting it, and each side's CDF at every
    point is a running count. Inside a run of equal values the counts are partial, but the
    run's width is 0 there, so every term equals the textbook formula's (a test holds the two
    to the same bits).
    """
    n, m = u.size, v.size
    from_v = np.zeros(n + m, dtype=bool)
    from_v[np.searchsorted(u, v, side="right") + np.arange(m)] = True
    points = np.empty(n + m, dtype=np.float64)
    points[from_v] = v
    points[~from_v] = u
    u_cdf = np.cumsum(~from_v)[:-1] / n
    v_cdf = np.cumsum(from_v)[:-1] / m
    return float(np.sum(np.abs(u_cdf - v_cdf) * np.diff(points)))


def _jensen_shannon(ref: np.ndarray, cur: np.ndarray, categorical: bool) -> float:
    """Jensen-Shannon distance (natural log) of the two value distributions."""
    if not categorical and np.unique(ref).size > _JS_HISTOGRAM_MIN_VALUES:
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        p = np.histogram(ref, bins)[0] / ref.size
        q = np.histogram(cur, bins)[0] / cur.size
    else:
        p, q = _shares(ref, cur)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0
    divergence = _relative_entropy(p, m).sum() + _relative_entropy(q, m).sum()
    return float(np.sqrt(divergence / 2.0))


def _relative_entropy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * log(x / y) elementwise, 0 where x is 0 (y > 0 wherever x > 0 here)."""
    out = np.zeros_like(x)
    positive = x > 0
    out[positive] = x[positive] * np.log(x[positive] / y[positive])
    return out


def _ks(ref: np.ndarray, cur: np.ndarray, _: bool) -> float:
    from scipy import stats

    return float(stats.ks_2samp(ref, cur)[1])


def _chi_square(ref: np.ndarray, cur: np.ndarray, _: bool) -> float:
    from scipy import stats

    keys, ref_counts, cur_counts = _counts(ref, cur)
    expected = ref_counts * (cur.size / ref.size)
    return float(stats.chisquare(cur_counts, expected)[1])


def _z_test(ref: np.ndarray, cur: np.ndarray, _: bool) -> float:
    from scipy import stats

    ref_values, cur_values = np.unique(ref), np.unique(cur)
    if ref_values.size == 1 and cur_values.size == 1 and ref_values[0] == cur_values[0]:
        return 1.0
    first = np.unique(np.concatenate([ref, cur]))[0]
    p1 = float(np.sum(ref != first)) / ref.size
    p2 = float(np.sum(cur != first)) / cur.size
    pooled = (p1 * ref.size + p2 * cur.size) / (ref.size + cur.size)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / ref.size + 1.0 / cur.size))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def _counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys = np.unique(np.concatenate([ref, cur]))
    ref_counts = np.zeros(keys.size)
    cur_counts = np.zeros(keys.size)
    values, counts = np.unique(ref, return_counts=True)
    ref_counts[np.searchsorted(keys, values)] = counts
    values, counts = np.unique(cur, return_counts=True)
    cur_counts[np.searchsorted(keys, values)] = counts
    return keys, ref_counts, cur_counts


def _shares(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, ref_counts, cur_counts = _counts(ref, cur)
    return ref_counts / ref.size, cur_counts / cur.size


_SCORERS = {
    WASSERSTEIN: _wasserstein,
    JENSEN_SHANNON: _jensen_shannon,
    KS: _ks,
    CHI_SQUARE: _chi_square,
    Z_TEST: _z_test,
}
