"""Rows that parse but break the data contract are quarantined with their own reason.

Each test reproduces a finding of issue 16: a row that used to reach the clean table.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.batch.local import find_batches
from fraud_assets.batch.ranges import RangeConfig, Step, ingest_range
from fraud_assets.batch.schemas import clean_transactions_schema, find_failures
from fraud_assets.cleaning import CleaningConfig, clean_batch
from fraud_assets.cleaning.rules import committed_in
from fraud_assets.cleaning.terminal_registry import RegistryError, TerminalRegistry, parse_registry
from fraud_assets.features.spec import LOOKBACK_DAYS
from fraud_assets.lake import CLEAN, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.rawdata.format import HEADER_LINE, BatchPeriod

KEY = Pseudonymizer(b"test-key")
DAY = dt.date(2025, 1, 1)
ORIGIN = dt.date(2025, 1, 1)
PERIOD = BatchPeriod(DAY, DAY)


def line(
    tx_id: int | str,
    stamp: str = "2025-01-01 10:00:00",
    terminal: int | str = 5,
    amount: str = "12.50",
    customer: int = 3,
) -> str:
    when = dt.datetime.fromisoformat(stamp) if "24:00" not in stamp else None
    seconds = int((when - dt.datetime(2025, 1, 1)).total_seconds()) if when else 86_400
    return f"{tx_id},{stamp},{customer},{terminal},{amount},{seconds},{seconds // 86_400},0,0"


def batch(*lines: str) -> bytes:
    return HEADER_LINE + ("\n".join(lines) + "\n").encode()


def clean(data: bytes, batch_id: str = "2025-01-01", **config: object):
    config = {"origin_date": ORIGIN, "period": PERIOD, **config}
    return clean_batch(data, batch_id, KEY, CleaningConfig(**config))


def reasons(result) -> list[tuple[int, str]]:  # noqa: ANN001 - a CleanResult
    return result.quarantine.select("line_no", "reason").rows()


def test_a_negative_transaction_id_is_quarantined():
    result = clean(batch(line(1), line(-5), line(2)))
    assert reasons(result) == [(3, "negative_id")]
    assert result.clean["transaction_id"].to_list() == [1, 2]
    assert result.quarantine["line"].to_list() == [line(-5)]


@pytest.mark.parametrize("amount", ["1e308", "10000000.01", "99999999999.99"])
def test_an_amount_above_the_maximum_is_quarantined_not_clipped(amount):
    result = clean(batch(line(1, amount="9999999.99"), line(2, amount=amount)))
    assert reasons(result) == [(3, "amount_above_maximum")]
    assert result.clean["tx_amount"].to_list() == [9_999_999.99]  # below: kept as it is
    assert result.quarantine["line"].to_list() == [line(2, amount=amount)]


def test_the_maximum_amount_is_configurable():
    result = clean(batch(line(1, amount="500.00")), max_amount=100.0)
    assert reasons(result) == [(2, "amount_above_maximum")]


def test_rows_dated_outside_the_batch_day_are_quarantined():
    result = clean(
        batch(
            line(1),
            line(2, "1970-01-01 00:00:00"),
            line(3, "2099-06-01 12:00:00"),
            line(4, "2024-12-31 23:59:59"),
            line(5, "2025-01-01 23:59:59"),
        )
    )
    assert reasons(result) == [(3, "outside_period"), (4, "outside_period"), (5, "outside_period")]
    assert result.clean["transaction_id"].to_list() == [1, 5]


def test_hour_24_of_the_last_day_is_inside_the_period():
    """The export's 24:00:00 is the midnight that ends the day: repaired, not quarantined."""
    result = clean(batch(line(1), line(2, "2025-01-01 24:00:00")))
    assert reasons(result) == []
    assert result.clean["tx_datetime"].to_list()[-1] == dt.datetime(2025, 1, 2)


def write_batch(folder: Path, batch_id: str, *lines: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{batch_id}.txt").write_bytes(batch(*lines))


def day_lines(day: dt.date, first_id: int, n: int = 5) -> list[str]:
    out = []
    for i in range(n):
        when = dt.datetime.combine(day, dt.time(10, i))
        seconds = int((when - dt.datetime(2025, 1, 1)).total_seconds())
        stamp = when.strftime("%Y-%m-%d %H:%M:%S")
        out.append(f"{first_id + i},{stamp},{i},{i},10.00,{seconds},{seconds // 86_400},0,0")
    return out


def test_stray_dates_no_longer_hide_a_gap_in_the_history(tmp_path: Path):
    """Rows dated 1970 and 2099 in the 2025-01-01 batch used to stretch its coverage over the
    58 days nobody delivered, and the 2025-03-01 batch was featurised without its history."""
    landing, lake = tmp_path / "landing", Lake(*filesystem_for(str(tmp_path / "lake")))
    write_batch(
        landing,
        "2025-01-01",
        *day_lines(DAY, 0),
        line(90, "1970-01-01 00:00:00"),
        line(91, "2099-06-01 00:00:00"),
    )
    write_batch(landing, "2025-03-01", *day_lines(dt.date(2025, 3, 1), 100))
    source = find_batches([str(landing)])
    config = RangeConfig(origin_date=ORIGIN)
    steps = {Step.RAW, Step.CLEAN, Step.FEATURES}
    first, later = ingest_range(list(source.paths), steps, source, lake, KEY, config)

    assert first.ok and first.clean.by_reason == {"outside_period": 2}
    coverage = lake.coverage()["2025-01-01"]
    assert (coverage.first_date, coverage.last_date) == ("2025-01-01", "2025-01-01")
    assert not later.ok and later.failed_step == Step.FEATURES
    # The look-back before 2025-03-01, from the day after the one date the first batch covers.
    look_back = dt.date(2025, 3, 1) - dt.timedelta(days=LOOKBACK_DAYS)
    assert later.missing_history[0] == max(look_back, dt.date(2025, 1, 2))
    assert later.missing_history[-1] == dt.date(2025, 2, 28)


def test_a_marker_may_declare_a_longer_period(tmp_path: Path):
    from fraud_assets.rawdata.format import BatchMarker

    landing, lake = tmp_path / "landing", Lake(*filesystem_for(str(tmp_path / "lake")))
    data = batch(line(1), line(2, "2025-01-15 10:00:00"), line(3, "2025-02-01 10:00:00"))
    landing.mkdir()
    (landing / "2025-01-01.txt").write_bytes(data)
    marker = BatchMarker(
        "2025-01-01", 3, len(data), _sha(data), "2025-01-01", "2025-01-01", "2025-01-31"
    )
    (landing / "2025-01-01.done").write_text(marker.to_json())
    source = find_batches([str(landing)])
    (outcome,) = ingest_range(["2025-01-01"], {Step.RAW, Step.CLEAN}, source, lake, KEY)
    assert outcome.ok and outcome.clean.by_reason == {"outside_period": 1}
    assert outcome.clean.period == "2025-01-01..2025-01-31"
    coverage = lake.coverage()["2025-01-01"]
    assert (coverage.first_date, coverage.last_date) == ("2025-01-01", "2025-01-31")


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_a_terminal_missing_from_the_registry_is_quarantined():
    registry = np.arange(1000)
    result = clean(batch(line(1, terminal=999), line(2, terminal=22000)), terminals=registry)
    assert reasons(result) == [(3, "unknown_terminal")]
    assert result.quarantine["line"].to_list() == [line(2, terminal=22000)]


def test_without_a_registry_only_the_fixed_maximum_applies():
    result = clean(batch(line(1, terminal=22000), line(2, terminal=1_000_000)))
    assert reasons(result) == [(3, "terminal_out_of_range")]


def test_with_a_registry_an_id_beyond_the_fixed_maximum_is_an_unknown_terminal():
    result = clean(batch(line(1, terminal=89518096)), terminals=np.array([89518096]))
    assert reasons(result) == []
    result = clean(batch(line(1, terminal=89518097)), terminals=np.array([89518096]))
    assert reasons(result) == [(2, "unknown_terminal")]


def test_an_id_another_batch_committed_is_quarantined_and_counted(tmp_path: Path):
    landing, lake = tmp_path / "landing", Lake(*filesystem_for(str(tmp_path / "lake")))
    write_batch(landing, "2025-01-01", line(7), line(8))
    write_batch(
        landing, "2025-01-02", line(8, "2025-01-02 09:00:00"), line(9, "2025-01-02 10:00:00")
    )
    source = find_batches([str(landing)])
    config = RangeConfig(origin_date=ORIGIN)
    first, second = ingest_range(list(source.paths), {Step.CLEAN}, source, lake, KEY, config)
    assert first.clean.by_reason == {}
    assert second.clean.by_reason == {"duplicate_id": 1}
    assert second.clean.conserved and second.clean.raw_rows == 2
    # Re-running the first batch does not count its own ids against it, in a new run too.
    (again,) = ingest_range(["2025-01-01"], {Step.CLEAN}, source, lake, KEY, config)
    assert again.clean.by_reason == {} and again.clean.clean_rows == 2
    ids = lake.read_by_date(CLEAN, dt.date(2025, 1, 1), dt.date(2025, 1, 3))["transaction_id"]
    assert sorted(ids.to_list()) == [7, 8, 9]


def test_the_registry_file_is_checked_naming_the_line():
    registry = parse_registry(b"\xef\xbb\xbfterminal_id,x\n3,1\n1,2\n3,1\n", "terminals.csv")
    assert registry.ids.tolist() == [1, 3]
    with pytest.raises(RegistryError, match="terminals.csv line 3: terminal id '-4'"):
        parse_registry(b"terminal_id\n1\n-4\n", "terminals.csv")
    with pytest.raises(RegistryError, match="line 1: no `terminal_id` column"):
        parse_registry(b"id\n1\n", "terminals.csv")
    assert isinstance(registry, TerminalRegistry)


def test_clean_tables_pass_the_schema_with_the_same_bounds():
    result = clean(
        batch(line(1), line(2, "2025-01-01 24:00:00"), line(-1), line(3, amount="1e308"))
    )
    schema = clean_transactions_schema(10_000_000.0, PERIOD)
    assert find_failures(schema, result.clean) == []
    broken = result.clean.with_columns(
        transaction_id=pl.lit(-1, pl.Int64),
        tx_amount=pl.lit(1e308),
        tx_datetime=pl.lit(dt.datetime(2099, 6, 1)),
    ).head(1)
    checks = {(f.column, f.check) for f in find_failures(schema, broken)}
    assert checks == {
        ("transaction_id", "greater_than_or_equal_to(0)"),
        ("tx_amount", "less_than_or_equal_to(10000000.0)"),
        ("tx_datetime", "in_range(2025-01-01 00:00:00, 2025-01-02 00:00:00)"),
    }


# -- conservation for arbitrary bad rows ------------------------------------------------------

COMMITTED = np.array([5, 6, 40, 41])
REGISTRY = np.array([0, 1, 2, 3, 5, 8, 13])

ids = st.one_of(st.integers(-50, 60), st.sampled_from([-(2**62), 2**62]))
stamps = st.one_of(
    st.datetimes(dt.datetime(2024, 12, 31, 22), dt.datetime(2025, 1, 2, 2)),
    st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2099, 12, 31)),
).map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S"))
amounts = st.one_of(
    st.integers(1, 2_000_000_000).map(lambda c: f"{c // 100}.{c % 100:02d}"),
    st.sampled_from(["1e308", "1e400", "-3.00", "0", "", "nan", "10000000", "10000000.01"]),
)
terminals = st.one_of(st.integers(-3, 20).map(str), st.sampled_from(["", "Err", "22000"]))
rows = st.builds(
    lambda i, s, t, a, hour_24: line(i, s[:11] + "24:00:00" if hour_24 else s, t, a),
    ids,
    stamps,
    terminals,
    amounts,
    st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(rows, max_size=30), use_registry=st.booleans())
def test_rows_are_conserved_and_the_clean_table_keeps_the_contract_for_any_bad_rows(
    lines, use_registry
):
    data = batch(*lines) if lines else HEADER_LINE
    config = {
        "terminals": REGISTRY if use_registry else None,
        "committed": committed_in({"other": COMMITTED}, "2025-01-01"),
        "max_amount": 10_000_000.0,
    }
    result = clean(data, **config)
    assert result.raw_rows == len(lines)
    assert result.raw_rows == result.clean.height + result.quarantine.height + result.duplicates
    # Every quarantined row keeps its original text, at its line number.
    for line_no, text in result.quarantine.select("line_no", "line").iter_rows():
        assert text == lines[line_no - 2]
    assert find_failures(clean_transactions_schema(10_000_000.0, PERIOD), result.clean) == []
    kept = set(result.clean["transaction_id"].to_list())
    assert not kept & set(COMMITTED.tolist())
