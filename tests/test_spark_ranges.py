"""The Spark engine's pieces that need no Spark: byte ranges and time slices give the default
engine's outcome (batch/spark_ranges.py, batch/spark_features.py)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.batch.pipeline import clean_into_lake, features_for_batches
from fraud_assets.batch.spark_features import slice_features, time_slices
from fraud_assets.batch.spark_ranges import RawFile, _count, read_range
from fraud_assets.cleaning import CleaningConfig
from fraud_assets.cleaning.parsing import FIRST_DATA_LINE, ParsedBatch, parse_batch, parse_range
from fraud_assets.features.spec import LOOKBACK_DAYS
from fraud_assets.lake import CLEAN, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.lake.manifests import FileEntry
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.rawdata.format import HEADER_LINE
from tests.support import write_days
from tests.test_parsing import RULES, assert_same, batches, row_rules, small_lines
from tests.test_parsing import lines as any_lines


def by_ranges(path: Path, data: bytes, cuts: list[int], rules) -> ParsedBatch:  # noqa: ANN001
    """What the Spark tasks do: each range read on its own (aligned to line starts), numbered
    from the lines of the ranges before it (the first job's counts), parsed and judged."""
    body = min(len(HEADER_LINE), len(data))
    inner = sorted({min(max(c, body), len(data)) for c in cuts})
    raw = RawFile(path.as_uri(), len(data), body, tuple([body, *inner, len(data)]))
    counts = [_count(read_range(raw, k)) for k in range(raw.ranges)]
    valid, rejected, first_line = [], [], FIRST_DATA_LINE
    for k in range(raw.ranges):
        part = read_range(raw, k)
        if part:
            parsed = parse_range(part, 0, len(part), first_line, rules)
            valid.append(parsed.valid)
            rejected.append(parsed.rejected)
        first_line += counts[k]
    whole = parse_batch(data, "batch.txt", rules)
    return ParsedBatch(
        pl.concat(valid) if valid else whole.valid.clear(),
        pl.concat(rejected) if rejected else whole.rejected.clear(),
        sum(counts),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=batches, cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_a_raw_file_cut_into_byte_ranges_anywhere_parses_as_a_whole(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, cuts: list[int]
) -> None:
    """Every line in exactly one range, with its number in the file and the whole file's
    verdict, wherever the cuts fall (inside a line, on a newline, between '\\r' and '\\n')."""
    path = tmp_path_factory.mktemp("raw") / "batch.txt"
    path.write_bytes(data)
    assert_same(by_ranges(path, data, cuts, RULES), parse_batch(data, "batch.txt", RULES))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.one_of(any_lines(), small_lines), max_size=40),
    cuts=st.lists(st.integers(0, 2000), max_size=5),
    rules=row_rules,
)
def test_the_rules_judge_a_range_as_they_judge_the_whole_file(
    tmp_path_factory: pytest.TempPathFactory, rows: list[str], cuts: list[int], rules
) -> None:  # noqa: ANN001
    """Rows a rule refuses keep their original text and line number in whichever range."""
    data = HEADER_LINE + "\n".join(rows).encode()
    path = tmp_path_factory.mktemp("raw") / "batch.txt"
    path.write_bytes(data)
    assert_same(by_ranges(path, data, cuts, rules), parse_batch(data, "batch.txt", rules))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.integers(0, 5_000_000), min_size=1, max_size=120),
    cores=st.integers(1, 8),
)
def test_time_slices_cover_the_dates_once_in_order(rows: list[int], cores: int) -> None:
    first = dt.date(2024, 1, 1) + dt.timedelta(days=LOOKBACK_DAYS)
    entries = [
        FileEntry(CLEAN, f"f{i}", n, (dt.date(2024, 1, 1) + dt.timedelta(days=i)).isoformat())
        for i, n in enumerate(rows)
    ]
    last = dt.date(2024, 1, 1) + dt.timedelta(days=len(rows) - 1)
    slices = time_slices(entries, first, last, cores)
    if last < first:
        assert slices == []
        return
    assert slices[0][0] == first and slices[-1][1] == last
    for (_, b), (c, _) in zip(slices, slices[1:], strict=False):
        assert c == b + dt.timedelta(days=1)
    assert all(a <= b for a, b in slices)
    days = (last - first).days + 1
    assert len(slices) <= max(cores, days // LOOKBACK_DAYS)  # the look-back at most doubles


@pytest.fixture(scope="module")
def lake_of_days(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """90 simulated days, each its own batch, cleaned into a lake by the default engine: longer
    than the look-back, so cutting the last 20 dates into slices spares each some of it."""
    days = tmp_path_factory.mktemp("days")
    write_days(days, days=90, dirty=0.02, seed=3)
    lake = Lake(*filesystem_for(str(tmp_path_factory.mktemp("lake"))))
    config = CleaningConfig(origin_date=dt.date(2024, 3, 1))
    for path in sorted(days.glob("*.txt")):
        if path.stem[:1].isdigit():
            clean_into_lake(lake, str(path), path.stem, Pseudonymizer(b"k"), config)
    shutil.rmtree(days)
    return lake


@pytest.mark.parametrize("cores", [1, 2, 5])
def test_features_by_time_slices_equal_the_default_engines(lake_of_days: Lake, cores: int) -> None:
    """Each slice reads only its dates and the look-back days before them, yet its rows get
    exactly the features the default engine gives them over the whole history."""
    known = lake_of_days.coverage()
    ready = sorted(known)[70:]
    want = features_for_batches(lake_of_days, ready)
    first = min(dt.date.fromisoformat(known[b].first_date) for b in ready)
    last = max(dt.date.fromisoformat(known[b].last_date) for b in ready) + dt.timedelta(days=1)
    since = first - dt.timedelta(days=LOOKBACK_DAYS)
    entries = [e for e in lake_of_days.files(CLEAN, since, last) if e.rows]
    slices = time_slices(entries, first, last, cores)
    assert len(slices) >= min(cores, 2)
    parts = [slice_features(lake_of_days, entries, [], ready, a, b) for a, b in slices]
    got = pl.concat([p for p in parts if p is not None])
    for batch_id in ready:
        mine = got.filter(pl.col("batch_id") == batch_id)
        assert mine.equals(want[batch_id]), batch_id
