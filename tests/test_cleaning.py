"""Cleaning handles every defect class of docs/raw-batches.md as the simulator's manifest says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.batch.pipeline import clean_into_lake
from fraud_assets.batch.schemas import CleanTransactions, QuarantinedTransactions
from fraud_assets.cleaning import CleaningConfig, clean_batch
from fraud_assets.lake import Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.rawdata.defects import QUARANTINED
from fraud_assets.rawdata.format import HEADER_LINE
from fraud_assets.rawdata.inspection import RawBatchError
from tests.support import write_days

KEY = Pseudonymizer(b"test-key")
ORIGIN = CleaningConfig(origin_date=dt.date(2024, 3, 1))


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("dirty")
    clean_dir, dirty_dir = root / "clean", root / "dirty"
    write_days(clean_dir, days=3, seed=5)
    summary = write_days(dirty_dir, days=3, seed=5, dirty=0.02)
    return clean_dir, dirty_dir, summary.batches


def test_each_quarantined_defect_lands_there_with_its_reason_and_count(dirty):
    _, dirty_dir, batches = dirty
    for batch in batches:
        manifest = pl.read_csv(dirty_dir / f"{batch}.dirty.csv", infer_schema=False)
        result = clean_batch(dirty_dir / f"{batch}.txt", batch, KEY, ORIGIN)
        expected = manifest.filter(pl.col("defect").is_in([d.value for d in QUARANTINED]))
        # Same lines, same reasons, same original text.
        got = result.quarantine.select("line_no", "reason", "line").sort("line_no")
        want = expected.select(
            pl.col("line_no").cast(pl.Int64),
            pl.col("defect").alias("reason"),
            pl.col("written_line").alias("line"),
        ).sort("line_no")
        assert got.equals(want)
        assert set(result.quarantined_by_reason) == {d.value for d in QUARANTINED}
        assert result.duplicates == manifest.filter(pl.col("defect") == "duplicate").height


def test_rows_are_conserved_for_every_batch(dirty):
    _, dirty_dir, batches = dirty
    for batch in batches:
        result = clean_batch(dirty_dir / f"{batch}.txt", batch, KEY, ORIGIN)
        raw_rows = len((dirty_dir / f"{batch}.txt").read_text().splitlines()) - 1
        assert result.raw_rows == raw_rows
        assert raw_rows == result.clean.height + result.quarantine.height + result.duplicates
        CleanTransactions.validate(result.clean)
        QuarantinedTransactions.validate(result.quarantine)


def test_repairable_rows_come_out_exactly_as_the_clean_run(dirty):
    """Hour 24 -> next day 00:00:00; seconds and days recomputed; the rest untouched."""
    clean_dir, dirty_dir, batches = dirty
    for batch in batches:
        truth = clean_batch(clean_dir / f"{batch}.txt", batch, KEY, ORIGIN).clean
        result = clean_batch(dirty_dir / f"{batch}.txt", batch, KEY, ORIGIN)
        manifest = pl.read_csv(dirty_dir / f"{batch}.dirty.csv", infer_schema=False)
        quarantined_ids = manifest.filter(pl.col("defect").is_in([d.value for d in QUARANTINED]))[
            "transaction_id"
        ].cast(pl.Int64)
        hour_24_ids = manifest.filter(pl.col("defect") == "hour_24")["transaction_id"].cast(
            pl.Int64
        )
        expected = truth.filter(~pl.col("transaction_id").is_in(quarantined_ids.implode()))
        got = result.clean
        # Hour-24 rows moved to the next midnight, by design of the defect.
        moved = got.filter(pl.col("transaction_id").is_in(hour_24_ids.implode()))
        assert (moved["tx_datetime"].dt.time() == dt.time(0)).all()
        assert (moved["tx_time_seconds"] % 86_400 == 0).all()
        assert (moved["tx_time_days"] == moved["tx_time_seconds"] // 86_400).all()
        assert got.filter(~pl.col("transaction_id").is_in(hour_24_ids.implode())).equals(
            expected.filter(~pl.col("transaction_id").is_in(hour_24_ids.implode()))
        )
        n = manifest["defect"].value_counts().rows_by_key("defect", unique=True)
        assert result.repaired == {
            "hour_24": n["hour_24"][0],
            "tx_time_seconds": n["wrong_seconds"][0],
            "tx_time_days": n["days_too_small"][0] + n["hour_24"][0],
        }


def test_amounts_are_never_clipped():
    body = (
        "0,2024-03-01 10:00:00,1,2,98765.43,36000,0,1,1\n"
        "1,2024-03-01 10:00:01,1,2,0.01,36001,0,0,0\n"
    )
    result = clean_batch(HEADER_LINE + body.encode(), "2024-03-01", KEY, ORIGIN)
    assert sorted(result.clean["tx_amount"].to_list()) == [0.01, 98765.43]


def test_a_duplicate_id_with_other_content_keeps_the_first():
    body = (
        "7,2024-03-01 10:00:00,1,2,5.00,36000,0,0,0\n7,2024-03-01 10:00:00,1,2,6.00,36000,0,0,0\n"
    )
    result = clean_batch(HEADER_LINE + body.encode(), "2024-03-01", KEY, ORIGIN)
    assert result.clean["tx_amount"].to_list() == [5.0] and result.duplicates == 1


def test_odd_values_get_a_reason_not_a_crash():
    body = (
        "1,2024-03-01 10:00:00,1,2,nan,36000,0,0,0\n"  # not a number
        "2,2024-03-01 10:00:00,1,2,5.00,36000,0,2,0\n"  # fraud flag 2
        "3,2024-03-01 99:00:00,1,2,5.00,36000,0,0,0\n"  # impossible time
        "\n"  # empty line
        "4,2024-03-01 10:00:00,x,2,5.00,36000,0,0,0\n"  # customer not a number
    )
    result = clean_batch(HEADER_LINE + body.encode(), "2024-03-01", KEY, ORIGIN)
    assert result.quarantine.select("line_no", "reason").rows() == [
        (2, "unparseable"),
        (3, "invalid_label"),
        (4, "unparseable"),
        (5, "unparseable"),
        (6, "bad_customer"),
    ]
    assert result.conserved


def test_a_bad_header_is_refused_naming_the_file():
    with pytest.raises(RawBatchError, match="x.txt line 1: header"):
        clean_batch(b"id,amount\n1,2\n", "2024-03-01", KEY, ORIGIN, name="x.txt")


def test_the_origin_is_inferred_when_no_marker_gives_it(dirty):
    _, dirty_dir, batches = dirty
    result = clean_batch(dirty_dir / f"{batches[1]}.txt", batches[1], KEY, CleaningConfig())
    assert result.origin == dt.date(2024, 3, 1)


def test_ids_are_pseudonymised_with_the_key_and_consistently():
    other = Pseudonymizer(b"another-key")
    assert KEY.one("customer", 42) == KEY.one("customer", 42)
    assert KEY.one("customer", 42) != other.one("customer", 42)
    assert KEY.one("customer", 42) != KEY.one("terminal", 42)
    column = KEY.column(pl.Series("customer_id", [42, 7, 42]), "customer")
    a, b = KEY.one("customer", 42), KEY.one("customer", 7)
    assert column.to_list() == [a, b, a]


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(
        st.one_of(st.integers(0, 2_000), st.integers(-(2**63), 2**63 - 1), st.none()), max_size=40
    )
)
def test_a_column_is_pseudonymised_exactly_as_one_id_at_a_time(ids):
    """The lookup table (ids in a narrow range) and the join (wide or null ids) agree with one()."""
    column = KEY.column(pl.Series("terminal_id", ids, dtype=pl.Int64), "terminal")
    assert column.name == "terminal_id"
    assert column.to_list() == [None if i is None else KEY.one("terminal", i) for i in ids]


def test_the_development_key_is_announced_loudly(monkeypatch):
    import fraud_assets.privacy.pseudonyms as privacy

    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    monkeypatch.setattr(privacy, "_warned", False)
    with pytest.warns(privacy.DevelopmentKeyWarning, match="PUBLIC DEVELOPMENT KEY"):
        Pseudonymizer()


def test_rerunning_a_batch_gives_identical_files(dirty, tmp_path):
    _, dirty_dir, batches = dirty
    lake = Lake(*filesystem_for(str(tmp_path / "lake")))

    def run() -> dict[str, bytes]:
        """Committed files by name without their commit id; no other data file may remain."""
        for batch in batches:
            clean_into_lake(lake, dirty_dir / f"{batch}.txt", batch, KEY, ORIGIN)
        out = {}
        for commit in lake.commits("clean").values():
            assert commit.meta["coverage"]["batch_id"] == commit.batch_id
            for entry in commit.files:
                name = entry.path.replace(f".{commit.commit_id}.", ".")
                out[name] = (tmp_path / "lake" / entry.path).read_bytes()
        assert len(list((tmp_path / "lake").rglob("*.parquet"))) == len(out)
        return out

    first = run()
    assert any("tx_date=" in name for name in first)
    assert run() == first


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    minutes=st.lists(st.integers(0, 5 * 24 * 60), min_size=1, max_size=60),
    earlier=st.lists(st.integers(0, 8 * 24 * 60), max_size=20),
    in_time_order=st.booleans(),
)
def test_a_table_is_written_one_file_per_date_with_every_row_in_its_order(
    minutes, earlier, in_time_order, tmp_path_factory
):
    """Time-ordered tables are cut into slices, others partitioned: the files must not differ.

    A re-run replaces what an earlier run of the batch wrote, dates it no longer has included,
    and leaves other batches alone.
    """
    if in_time_order:
        minutes = sorted(minutes)

    def frame_of(minutes: list[int]) -> pl.DataFrame:
        start = dt.datetime(2024, 3, 1)
        return pl.DataFrame(
            {
                "transaction_id": range(len(minutes)),
                "tx_datetime": [start + dt.timedelta(minutes=m) for m in minutes],
            },
            schema={"transaction_id": pl.Int64, "tx_datetime": pl.Datetime("us")},
        )

    frame = frame_of(minutes)
    root = tmp_path_factory.mktemp("lake")
    lake = Lake(*filesystem_for(str(root)))
    lake.write_by_date("clean", "b0", frame_of(earlier))
    lake.write_by_date("clean", "b1", frame_of(earlier))
    lake.write_by_date("clean", "b1", frame)
    if earlier:
        kept = lake.read_batch("clean", "b0").sort("transaction_id")
        assert kept.equals(frame_of(earlier))

    written = {
        f"tx_date={entry.date}": pl.read_parquet(root / entry.path)
        for entry in lake.files("clean", batches={"b1"})
    }
    assert len(list((root / "clean").rglob("b1.*"))) == len(written)  # the old files: removed
    dates = frame["tx_datetime"].dt.date()
    assert sorted(written) == sorted(f"tx_date={d}" for d in dates.unique())
    for name, part in written.items():
        day = dt.date.fromisoformat(name.removeprefix("tx_date="))
        assert part.equals(frame.filter(dates == day)), name  # same rows, same order
