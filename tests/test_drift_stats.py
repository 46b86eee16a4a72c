"""The drift verdict without Evidently equals Evidently's: same test per column, same score, same
threshold, same decision, same share and verdict (docs/decisions/drift-statistics.md).

Evidently is the reference implementation here: every case is run through both.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.monitoring.drift import drift_report, drift_statistics
from fraud_assets.monitoring.drift_stats import (
    CHI_SQUARE,
    JENSEN_SHANNON,
    KS,
    WASSERSTEIN,
    Z_TEST,
    column_drift,
)

# Every test here runs Evidently itself (seconds to import, then per report).
pytestmark = pytest.mark.slow


def assert_same_verdict(reference: pl.DataFrame, current: pl.DataFrame, **kwargs) -> None:
    ours = drift_statistics(reference, current, **kwargs)
    theirs = drift_report(reference, current, **kwargs)
    assert [c.column for c in ours.columns] == [c.column for c in theirs.columns]
    for mine, evidently in zip(ours.columns, theirs.columns, strict=True):
        assert mine.method == evidently.method, mine.column
        assert mine.threshold == evidently.threshold, mine.column
        assert mine.score == pytest.approx(evidently.score, rel=1e-9, abs=1e-12), mine.column
        assert mine.drifted == evidently.drifted, mine.column
    assert ours.drift_share == theirs.drift_share
    assert ours.drifted == theirs.drifted
    assert (ours.reference_rows, ours.current_rows) == (theirs.reference_rows, theirs.current_rows)
    assert ours.skipped == theirs.skipped
    assert ours.html == "" and "<html" in theirs.html


def frame(rng: np.random.Generator, rows: int, shift: float, flag_share: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0 * (1 + shift), rows),  # many distinct values
            "count_1d": rng.poisson(2 + 3 * shift, rows).astype(np.int64),  # a few dozen values
            "few": rng.integers(0, 4, rows).astype(np.int64),  # <= 5 distinct values
            "flag": (rng.random(rows) < flag_share).astype(np.int8),  # categorical, binary
            "weekday": rng.integers(0, 7, rows).astype(np.int8),  # categorical, 7 values
            "score": rng.beta(1, 20 - 10 * shift, rows),
        }
    )


CATEGORICAL = ["flag", "weekday"]
SIZES = [
    (5_000, 2_000),  # large reference: Wasserstein and Jensen-Shannon
    (800, 600),  # small reference: K-S, chi-square and Z-test
    (1_000, 300),  # the boundary: 1 000 reference rows still count as small
    (1_001, 300),
]


@pytest.mark.parametrize(("ref_rows", "cur_rows"), SIZES)
@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_the_verdict_equals_evidentlys(ref_rows: int, cur_rows: int, shift: float):
    rng = np.random.default_rng(ref_rows + cur_rows)
    reference = frame(rng, ref_rows, 0.0, 0.1)
    current = frame(rng, cur_rows, shift, 0.1 + shift / 4)
    assert_same_verdict(
        reference,
        current,
        columns=["amount", "count_1d", "few", "flag", "weekday"],
        categorical=CATEGORICAL,
        label_column=None,
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    ref_rows=st.sampled_from([40, 300, 1000, 1001, 3000]),
    cur_rows=st.integers(20, 1500),
    shift=st.floats(0.0, 1.0),
    sample_rows=st.sampled_from([None, 500]),
)
def test_any_sizes_shifts_and_samples_give_evidentlys_verdict(
    seed: int, ref_rows: int, cur_rows: int, shift: float, sample_rows: int | None
):
    rng = np.random.default_rng(seed)
    reference = frame(rng, ref_rows, 0.0, 0.2)
    current = frame(rng, cur_rows, shift, 0.2 + shift / 3)
    assert_same_verdict(
        reference,
        current,
        columns=["amount", "count_1d", "few", "flag", "weekday"],
        categorical=CATEGORICAL,
        label_column=None,
        sample_rows=sample_rows,
        seed=seed % 1000,
    )


def test_constant_and_one_sided_columns_match_evidently():
    reference = pl.DataFrame({"x": [1.0] * 1500, "f": [0] * 1500, "g": [1] * 1500})
    current = pl.DataFrame({"x": [1.0] * 400, "f": [0] * 400, "g": [0] * 200 + [1] * 200})
    assert_same_verdict(
        reference, current, columns=["x", "f", "g"], categorical=["f", "g"], label_column=None
    )


def test_missing_values_and_infinities_are_dropped_as_evidently_does():
    rng = np.random.default_rng(3)
    values = rng.normal(50, 10, 2000)
    values[::7] = np.nan
    values[::11] = np.inf
    reference = pl.DataFrame({"x": values[:1500]})
    current = pl.DataFrame({"x": values[1500:] + 5})
    assert_same_verdict(reference, current, columns=["x"], label_column=None)


def test_each_size_and_kind_gets_the_test_evidently_documents():
    rng = np.random.default_rng(0)
    many = rng.normal(size=2000)
    few = rng.integers(0, 3, 2000)
    binary = rng.integers(0, 2, 2000)
    assert column_drift(many, many, categorical=False).method == WASSERSTEIN
    assert column_drift(few, few, categorical=False).method == JENSEN_SHANNON
    assert column_drift(many[:900], many, categorical=False).method == KS
    assert column_drift(few[:900], few, categorical=False).method == CHI_SQUARE
    assert column_drift(binary[:900], binary, categorical=True).method == Z_TEST
    assert column_drift(binary, binary, categorical=True).method == JENSEN_SHANNON


def test_an_empty_side_is_refused():
    with pytest.raises(ValueError, match="empty"):
        column_drift(np.array([np.nan]), np.array([1.0]), categorical=False)


def _textbook_area_between_cdfs(u: np.ndarray, v: np.ndarray) -> float:
    """The formula the merge replaces: sort the union, count each side below every point."""
    points = np.sort(np.concatenate([u, v]))
    u_cdf = np.searchsorted(u, points[:-1], side="right") / u.size
    v_cdf = np.searchsorted(v, points[:-1], side="right") / v.size
    return float(np.sum(np.abs(u_cdf - v_cdf) * np.diff(points)))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-50, 50), min_size=1, max_size=300),
    st.lists(st.integers(-50, 50), min_size=1, max_size=300),
    st.sampled_from([1.0, 0.1, 1e-3, 7.25]),
)
def test_the_merged_wasserstein_area_is_the_textbook_one_to_the_bit(ref, cur, scale):
    from fraud_assets.monitoring.drift_stats import _area_between_cdfs

    # Small integer grids scaled: many ties inside and across the two samples.
    u = np.sort(np.asarray(ref, dtype=np.float64) * scale)
    v = np.sort(np.asarray(cur, dtype=np.float64) * scale)
    assert _area_between_cdfs(u, v) == _textbook_area_between_cdfs(u, v)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(-20, 20), min_size=1, max_size=1500),
    st.lists(st.lists(st.integers(-20, 20), min_size=1, max_size=400), min_size=1, max_size=3),
    st.booleans(),
    st.sampled_from([np.int64, np.float64]),
)
def test_a_remembered_reference_gives_the_same_tests_as_a_fresh_one(ref, currents, cat, dtype):
    """Batches judged against one reference reuse its memo; each verdict equals a fresh one."""
    from fraud_assets.monitoring.drift_stats import _distinct_in_union

    reference = np.asarray(ref, dtype=dtype) * (1.5 if dtype is np.float64 else 1)
    memo: dict = {}
    for values in currents:
        current = np.asarray(values, dtype=dtype)
        assert column_drift(reference, current, cat, memo=memo) == column_drift(
            reference, current, cat
        )
        assert (
            _distinct_in_union(reference, current, {})
            == np.unique(np.concatenate([reference, current])).size
        )


def test_a_range_against_one_reference_equals_batches_judged_alone():
    rng = np.random.default_rng(3)
    reference = frame(rng, 8_000, 0.0, 0.1)
    samples: dict = {}
    options = {"columns": [*frame(rng, 1, 0, 0).columns], "categorical": CATEGORICAL}
    for shift in (0.0, 0.2, 0.5):
        current = frame(rng, 1_500, shift, 0.1)
        shared = drift_statistics(reference, current, reference_samples=samples, **options)
        alone = drift_statistics(reference, current, **options)
        assert shared == alone
    assert samples, "the reference sample was remembered"
