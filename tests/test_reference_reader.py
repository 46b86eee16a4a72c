"""Rolling drift references cut from one read of the lake equal a read of each window alone."""

import datetime as dt
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.lake import FEATURES, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.monitoring.reference import Reference, ReferenceReader

START = dt.date(2024, 1, 1)


def lake_with_days(root: Path, rows_per_day: list[int]) -> Lake:
    lake = Lake(*filesystem_for(str(root)))
    for day, rows in enumerate(rows_per_day):
        date = START + dt.timedelta(days=day)
        midnight = dt.datetime.combine(date, dt.time())
        stamps = [midnight + dt.timedelta(minutes=7 * i) for i in range(rows)]
        frame = pl.DataFrame(
            {"tx_datetime": stamps, "value": [day * 1000 + i for i in range(rows)]},
            schema={"tx_datetime": pl.Datetime("us"), "value": pl.Int64},
        )
        lake.write_by_date(FEATURES, date.isoformat(), frame)
    return lake


@settings(max_examples=20, deadline=None)
@given(
    rows=st.lists(st.integers(0, 30), min_size=3, max_size=12),
    windows=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 4)), min_size=2, max_size=5),
)
def test_each_rolling_window_equals_a_read_of_that_window(tmp_path_factory, rows, windows):
    lake = lake_with_days(tmp_path_factory.mktemp("lake"), rows)
    references = [
        Reference(
            description=f"window {s}+{length}",
            first=START + dt.timedelta(days=s),
            last=START + dt.timedelta(days=s + length),
            batch_id=None,
        )
        for s, length in windows
    ]
    reader = ReferenceReader(lake)
    reader.prefetch(references)
    for reference in references:
        alone = lake.read_by_date(FEATURES, reference.first, reference.last)
        cut = reader.rows(reference)
        assert cut.height == alone.height
        if alone.height:
            assert cut.equals(alone)
