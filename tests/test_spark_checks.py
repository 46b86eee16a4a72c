"""Schema checks run partition by partition (Spark's executors) add up to the check of the whole
table: the failures' cases, a structural failure counted once, and a retried task's report
replacing the first one (`batch/spark_checks.py`). No Spark session: the per-partition and
summing functions are plain Python."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.batch.schemas import Column, TableSchema, find_failures, ge, le
from fraud_assets.batch.spark_checks import PartitionFailures, failure_rows, summarise

SCHEMA = TableSchema(
    "toy",
    (
        Column("amount", pl.Float64, (ge(0.0), le(100.0))),
        Column("count", pl.Int64, (ge(0),), nullable=True),
        Column("label", pl.String),
    ),
)


def _counts(lines: list[str]) -> set[tuple[str, str]]:
    """(column: check, cases) of each failure line, the example left out."""
    return {tuple(line.split(" e.g. ")[0].split(" (")) for line in lines}  # type: ignore[misc]


rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.just(float("nan")), st.floats(-10, 110)),
        st.one_of(st.none(), st.integers(-3, 3)),
        st.one_of(st.none(), st.sampled_from(["a", "b"])),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows, cuts=st.lists(st.integers(0, 60), max_size=5), drop_label=st.booleans())
def test_partition_checks_add_up_to_the_whole_tables_check(
    rows: list[tuple], cuts: list[int], drop_label: bool
) -> None:
    frame = pl.DataFrame(
        rows, schema={"amount": pl.Float64, "count": pl.Int64, "label": pl.String}, orient="row"
    )
    if drop_label:  # a structural failure: reported by every partition, counted once
        frame = frame.drop("label")
    bounds = sorted({0, frame.height, *(c for c in cuts if c < frame.height)})
    parts = [frame[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    reported = PartitionFailures().zero({})
    for i, part in enumerate(parts):
        reported = PartitionFailures().addInPlace(reported, {i: failure_rows(SCHEMA, part, None)})
    summed = summarise([r for found in reported.values() for r in found]).get(None, [])
    whole = [str(f) for f in find_failures(SCHEMA, frame)]
    assert _counts(summed) == _counts(whole)


def test_a_retried_task_replaces_its_report() -> None:
    frame = pl.DataFrame({"amount": [-1.0, 5.0], "count": [1, 2], "label": ["a", "b"]})
    first = failure_rows(SCHEMA, frame, None)
    reported = PartitionFailures().addInPlace({}, {0: first})
    reported = PartitionFailures().addInPlace(reported, {0: first})  # the same task, again
    summed = summarise([r for found in reported.values() for r in found])[None]
    assert _counts(summed) == _counts([str(f) for f in find_failures(SCHEMA, frame)])
    assert "1 case(s)" in summed[0]


def test_failures_are_kept_apart_by_key() -> None:
    frame = pl.DataFrame(
        {"amount": [-1.0, 5.0, -2.0], "count": [1, 2, 3], "label": ["a", "b", "b"]}
    ).with_columns(batch=pl.Series(["x", "y", "y"]))
    summed = summarise(failure_rows(SCHEMA, frame, "batch"))
    assert set(summed) == {"x", "y"}
    assert _counts(summed["x"]) == _counts(summed["y"])  # one amount below 0 in each
