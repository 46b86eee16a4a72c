"""The lake commits a batch's files all at once: readers see the previous version or the new one,
never a mixture, never a file no commit names. The restricted zone keeps the raw lines apart.

Crashes of whole processes (kill -9, named crash points) are in tests/test_crash_safety.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fraud_assets.cli import app
from fraud_assets.lake import (
    CLEAN,
    FEATURES,
    QUARANTINE,
    RESTRICTED_QUARANTINE,
    BatchCoverage,
    Lake,
    committed_urls,
)
from fraud_assets.lake.filesystems import filesystem_for

START = dt.datetime(2024, 3, 1)


def rows(days: list[int], value: float, first_id: int = 0) -> pl.DataFrame:
    """A clean-like frame: one row per entry of `days` (day offsets), every amount `value`."""
    return pl.DataFrame(
        {
            "transaction_id": range(first_id, first_id + len(days)),
            "tx_datetime": [START + dt.timedelta(days=d, hours=1) for d in sorted(days)],
            "tx_amount": [value] * len(days),
            "batch_id": ["b"] * len(days),
        },
        schema={
            "transaction_id": pl.Int64,
            "tx_datetime": pl.Datetime("us"),
            "tx_amount": pl.Float64,
            "batch_id": pl.String,
        },
    )


def quarantine(lines: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "batch_id": ["b"] * len(lines),
            "line_no": list(range(2, 2 + len(lines))),
            "line": lines,
            "reason": ["bad_amount"] * len(lines),
        },
        schema={"batch_id": pl.String, "line_no": pl.Int64, "line": pl.String, "reason": pl.String},
    )


def coverage(frame: pl.DataFrame, content: str) -> BatchCoverage:
    days = frame["tx_datetime"].dt.date()
    return BatchCoverage(
        "b", str(days.min()), str(days.max()), frame.height, str(START.date()), content
    )


def lake_at(path: Path, **kwargs) -> Lake:
    return Lake(*filesystem_for(str(path)), **kwargs)


def data_files(root: Path) -> set[str]:
    """Every data file on disk, committed or not."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".parquet" in p.name and "_commits" not in p.parts
    }


def committed_files(lake: Lake) -> set[str]:
    return {
        f.path for stage in (CLEAN, FEATURES) for c in lake.commits(stage).values() for f in c.files
    }


class DiesAfterFirstFile:
    """Polars' Parquet writer that writes half of its second file, then fails (a dying writer)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.real = pl.DataFrame.write_parquet
        monkeypatch.setattr(pl.DataFrame, "write_parquet", self)

    def __get__(self, frame, owner=None):  # noqa: ANN001, ANN204 - bound like a method
        return lambda target, **kw: self(frame, target, **kw)

    def __call__(self, frame: pl.DataFrame, target, **kw) -> None:  # noqa: ANN001
        self.calls += 1
        if self.calls == 1:
            return self.real(frame, target, **kw)
        import io

        buffer = io.BytesIO()
        self.real(frame, buffer, **kw)
        data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(target, str | Path):
            Path(target).write_bytes(data)
        else:
            target.write(data)
        raise OSError("disk went away")


def test_a_writer_dying_after_its_first_file_leaves_the_previous_version_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Issue 16's finding: a re-run that died mid-way left half old, half new rows (and a torn
    file) where either the old or the new version was expected."""
    lake = lake_at(tmp_path)
    old = rows([0, 0, 1, 2, 3], 10.0)
    lake.write_by_date(CLEAN, "b", old)
    new = rows([0, 1, 1, 2, 3], 99.0)

    DiesAfterFirstFile(monkeypatch)
    with pytest.raises(OSError, match="disk went away"):
        lake.write_by_date(CLEAN, "b", new)
    monkeypatch.undo()

    assert lake.read_batch(CLEAN, "b").equals(old)
    assert lake.read_by_date(CLEAN, START.date(), START.date() + dt.timedelta(days=3)).equals(old)


def test_files_no_commit_names_are_never_read_and_the_next_commit_removes_them(tmp_path: Path):
    lake = lake_at(tmp_path)
    old = rows([0, 1], 10.0)
    lake.write_by_date(CLEAN, "b", old)
    # What a crashed attempt leaves: a torn file and a whole one, neither committed.
    torn = tmp_path / "clean" / "tx_date=2024-03-01" / "b.crashed.parquet"
    torn.write_bytes(b"PAR1\x00\x00")
    rows([0], 5.0).write_parquet(tmp_path / "clean" / "tx_date=2024-03-02" / "b.crashed2.parquet")

    assert lake.read_batch(CLEAN, "b").equals(old)
    assert lake.dates(CLEAN) == [dt.date(2024, 3, 1), dt.date(2024, 3, 2)]
    assert all("crashed" not in url for url in committed_urls(lake, CLEAN))

    new = rows([1, 2], 20.0)
    lake.write_by_date(CLEAN, "b", new)
    assert lake.read_batch(CLEAN, "b").equals(new)
    assert data_files(tmp_path) == committed_files(lake)  # superseded and crashed: gone


def test_a_clean_commit_holds_rows_quarantine_and_coverage_together(tmp_path: Path):
    lake = lake_at(tmp_path)
    clean = rows([0, 1, 2], 10.0)
    lake.commit_clean("b", clean, quarantine(["x;1", "y;2"]), coverage(clean, "v1"))
    again = rows([0, 1], 11.0)
    lake.commit_clean("b", again, quarantine(["z;3"]), coverage(again, "v2"))

    assert lake.read_batch(CLEAN, "b").equals(again)
    assert lake.read_batch(QUARANTINE, "b")["line_no"].to_list() == [2]
    assert lake.coverage()["b"] == coverage(again, "v2")
    (commit,) = lake.commits(CLEAN).values()
    assert {f.table for f in commit.files} == {CLEAN, QUARANTINE, RESTRICTED_QUARANTINE}
    assert data_files(tmp_path) == committed_files(lake)


def test_other_batches_and_stages_are_left_alone(tmp_path: Path):
    lake = lake_at(tmp_path)
    a, b = rows([0, 1], 1.0), rows([1, 2], 2.0)
    lake.write_by_date(CLEAN, "a", a)
    lake.write_by_date(FEATURES, "a", a)
    lake.write_by_date(CLEAN, "b", b)
    lake.write_by_date(CLEAN, "a", rows([3], 3.0))
    assert lake.read_batch(CLEAN, "b").equals(b)
    assert lake.read_batch(FEATURES, "a").equals(a)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    versions=st.lists(
        st.tuples(
            st.lists(st.integers(0, 5), min_size=0, max_size=12),  # day offsets of the rows
            st.one_of(st.none(), st.integers(0, 3)),  # the attempt dies writing this file
        ),
        min_size=1,
        max_size=5,
    )
)
def test_the_lake_always_reads_the_last_version_that_committed(
    versions, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
):
    lake = lake_at(tmp_path_factory.mktemp("lake"))
    committed = pl.DataFrame()
    real = Lake._write_parquet
    for n, (days, dies_at) in enumerate(versions):
        frame = rows(days, float(n))
        calls = []

        def write(self, path, frame, key=None, half=False, calls=calls, dies_at=dies_at):  # noqa: ANN001
            if len(calls) == dies_at:
                raise OSError("killed")
            calls.append(path)
            return real(self, path, frame, key, half)

        monkeypatch.setattr(Lake, "_write_parquet", write)
        try:
            lake.write_by_date(CLEAN, "b", frame)
            committed = frame
        except OSError:
            pass
        monkeypatch.setattr(Lake, "_write_parquet", real)
        got = lake.read_batch(CLEAN, "b")
        assert got.equals(committed) or (got.height == 0 and committed.height == 0)


def test_quarantined_raw_lines_live_only_in_the_restricted_zone(tmp_path: Path):
    lake = lake_at(tmp_path)
    clean = rows([0], 1.0)
    raw = ["4111111111111111;2024-03-01 01:00:00;terminal 77;12.50", "card 4000;oops"]
    lake.commit_clean("b", clean, quarantine(raw), coverage(clean, "v1"))

    shared = lake.read_table(QUARANTINE)
    assert shared.columns == ["batch_id", "line_no", "reason"]
    assert lake.read_table(RESTRICTED_QUARANTINE)["line"].to_list() == raw
    for path in (tmp_path / "quarantine").rglob("*"):
        assert b"4111111111111111" not in path.read_bytes()
    assert not (tmp_path / "clean" / "restricted").exists()
    assert (tmp_path / "restricted" / "quarantine").is_dir()


def test_with_a_key_the_restricted_zone_is_encrypted_and_unreadable_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from fraud_assets.lake.restricted import RestrictedKeyError

    key = Fernet.generate_key()
    monkeypatch.setenv("FRAUD_QUARANTINE_KEY", key.decode())
    lake = lake_at(tmp_path)
    clean = rows([0], 1.0)
    lake.commit_clean("b", clean, quarantine(["4111111111111111;secret"]), coverage(clean, "v"))

    (stored,) = (tmp_path / "restricted" / "quarantine").iterdir()
    assert stored.name.endswith(".parquet.fernet")
    assert b"4111111111111111" not in stored.read_bytes()
    assert lake.read_table(RESTRICTED_QUARANTINE)["line"].to_list() == ["4111111111111111;secret"]
    assert lake.read_table(QUARANTINE).height == 1  # the shared table needs no key

    monkeypatch.delenv("FRAUD_QUARANTINE_KEY")
    with pytest.raises(RestrictedKeyError, match="set FRAUD_QUARANTINE_KEY"):
        lake.read_table(RESTRICTED_QUARANTINE)
    monkeypatch.setenv("FRAUD_QUARANTINE_KEY", Fernet.generate_key().decode())
    with pytest.raises(RestrictedKeyError, match="not the key it was written with"):
        lake.read_table(RESTRICTED_QUARANTINE)


def test_fraud_lake_export_writes_only_committed_rows(tmp_path: Path):
    lake = lake_at(tmp_path / "lake")
    first, second = rows([0, 1], 1.0), rows([2, 3, 3], 2.0, first_id=10)
    lake.write_by_date(FEATURES, "a", first)
    lake.write_by_date(FEATURES, "b", second)
    stray = tmp_path / "lake" / "features" / "tx_date=2024-03-01" / "a.crashed.parquet"
    rows([0] * 50, 7.0).write_parquet(stray)

    out = tmp_path / "export" / "features.parquet"
    result = CliRunner().invoke(
        app, ["lake", "export", "features", str(out), "--lake", str(tmp_path / "lake")]
    )
    assert result.exit_code == 0, result.output
    assert "5 committed rows of features (2 batches)" in result.output
    exported = pl.read_parquet(out).sort("transaction_id")
    assert exported.equals(pl.concat([first, second]))

    listed = CliRunner().invoke(
        app, ["lake", "commits", "--lake", str(tmp_path / "lake")], env={"COLUMNS": "200"}
    )
    assert listed.exit_code == 0, listed.output
    for commit in lake.commits(FEATURES).values():
        assert commit.commit_id in listed.output


def test_export_of_a_table_without_commits_fails_clearly(tmp_path: Path):
    result = CliRunner().invoke(
        app, ["lake", "export", "clean", "x.parquet", "--lake", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "has no committed data yet" in result.output
    bad = CliRunner().invoke(app, ["lake", "export", "nope", "x.parquet", "--lake", str(tmp_path)])
    assert bad.exit_code == 2


def test_on_s3_commits_are_single_puts_and_spark_gets_s3a_urls(
    s3_bucket: str, s3_server: str, tmp_path: Path
):
    from tests.support import S3_CREDENTIALS

    fs, root = filesystem_for(
        f"{s3_bucket}/lake", client_kwargs={"endpoint_url": s3_server}, **S3_CREDENTIALS
    )
    lake = Lake(fs, root)
    old, new = rows([0, 1], 1.0), rows([1, 2], 2.0)
    lake.write_by_date(FEATURES, "b", old)
    lake.write_by_date(FEATURES, "b", new)
    assert lake.read_batch(FEATURES, "b").equals(new)
    urls = committed_urls(lake, FEATURES)
    assert len(urls) == 2 and all(u.startswith(f"s3a://{root}/features/tx_date=") for u in urls)
    objects = fs.find(f"{root}/features")
    assert sorted(f"s3a://{o}" for o in objects) == sorted(urls)  # the old version: removed
    assert not [o for o in fs.find(root) if o.endswith(".tmp")]

    from fraud_assets.lake.export import export_table

    done = export_table(lake, FEATURES, str(tmp_path / "features.parquet"))
    assert done.rows == new.height
    assert pl.read_parquet(tmp_path / "features.parquet").equals(new)


def test_a_cleaned_batch_keeps_its_raw_lines_only_in_the_restricted_zone(tmp_path: Path):
    from fraud_assets.batch.pipeline import clean_into_lake
    from fraud_assets.cleaning import CleaningConfig
    from fraud_assets.privacy import Pseudonymizer
    from tests.support import write_days

    summary = write_days(tmp_path / "landing", days=1, dirty=0.05)
    (batch,) = summary.batches
    lake = lake_at(tmp_path / "lake")
    result = clean_into_lake(
        lake,
        tmp_path / "landing" / f"{batch}.txt",
        batch,
        Pseudonymizer(b"k"),
        CleaningConfig(origin_date=START.date()),
    )
    assert result.quarantine.height > 0
    shared = lake.read_batch(QUARANTINE, batch)
    assert "line" not in shared.columns
    assert shared.equals(result.quarantine.drop("line"))
    lines = lake.read_batch(RESTRICTED_QUARANTINE, batch)
    assert lines.equals(result.quarantine.select("batch_id", "line_no", "line"))


def test_restricted_lines_are_exported_with_the_key_and_refused_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("FRAUD_QUARANTINE_KEY", key)
    lake = lake_at(tmp_path / "lake")
    clean = rows([0], 1.0)
    lake.commit_clean("b", clean, quarantine(["raw;line"]), coverage(clean, "v"))
    target = tmp_path / "lines.parquet"
    args = ["lake", "export", RESTRICTED_QUARANTINE, str(target), "--lake", str(tmp_path / "lake")]

    monkeypatch.delenv("FRAUD_QUARANTINE_KEY")
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1
    assert "set FRAUD_QUARANTINE_KEY" in refused.output and not target.exists()

    allowed = CliRunner().invoke(app, args, env={"FRAUD_QUARANTINE_KEY": key})
    assert allowed.exit_code == 0, allowed.output
    assert pl.read_parquet(target)["line"].to_list() == ["raw;line"]


def test_a_reader_lists_again_when_a_commit_removed_a_file_it_had_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    lake = lake_at(tmp_path)
    old, new = rows([0, 1], 1.0), rows([0, 1], 2.0)
    lake.write_by_date(CLEAN, "b", old)
    real = Lake.read_files
    interleaved = []

    def read_files(self, entries, columns=None):  # noqa: ANN001 - a commit between list and read
        if not interleaved:
            interleaved.append(True)
            real(self, [])
            lake.write_by_date(CLEAN, "b", new)
        return real(self, entries, columns)

    monkeypatch.setattr(Lake, "read_files", read_files)
    assert lake.read_batch(CLEAN, "b").equals(new)
