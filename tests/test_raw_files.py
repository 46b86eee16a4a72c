"""What the simulator writes: the raw format (docs/raw-batches.md), markers, dirty manifests."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.rawdata.defects import REPAIRABLE, Defect
from fraud_assets.rawdata.format import HEADER_LINE, BatchMarker
from fraud_assets.simulation import SimulationParams
from fraud_assets.simulation.writer import write_simulation
from tests.support import write_days

ROW = re.compile(
    r"^(\d+),(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d+),(\d+),(\d+\.\d{2}),"
    r"(\d+),(\d+),([01]),([0-3])$"
)


def data_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:]


def test_header_is_byte_exact_and_each_batch_has_its_marker(landing: Path):
    summary = write_days(landing, days=3)
    assert summary.batches == ["2024-03-01", "2024-03-02", "2024-03-03"]
    expected_header = (
        b"# tranaction_id | tx_datetime | customer_id | terminal_id | tx_amount | "
        b"tx_time_seconds | tx_time_days | tx_fraud | tx_fraud_scenario\n"
    )
    for batch in summary.batches:
        content = (landing / f"{batch}.txt").read_bytes()
        assert content.startswith(expected_header) and expected_header == HEADER_LINE
        marker = BatchMarker.from_json((landing / f"{batch}.done").read_text())
        assert marker.sha256 == hashlib.sha256(content).hexdigest()
        assert marker.bytes == len(content)
        assert marker.rows == content.count(b"\n") - 1


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    customers=st.integers(1, 200),
    terminals=st.integers(1, 300),
    days=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    radius=st.floats(0.5, 30),
    lead=st.integers(0, 40),
)
def test_every_row_is_well_formed_for_any_parameters(
    tmp_path_factory, customers, terminals, days, seed, radius, lead
):
    out = tmp_path_factory.mktemp("raw")
    start = dt.date(2023, 12, 30)
    params = SimulationParams(
        customers=customers,
        terminals=terminals,
        days=days,
        seed=seed,
        radius=radius,
        start_date=start,
        origin_date=start - dt.timedelta(days=lead),
    )
    summary = write_simulation(params, *filesystem_for(str(out)))
    previous_id, previous_stamp = -1, ""
    for batch in summary.batches:
        for line in data_lines(out / f"{batch}.txt"):
            m = ROW.match(line)
            assert m, line
            tx_id, stamp, cust, term, amount, secs, days_ = m.groups()[:7]
            assert int(tx_id) == previous_id + 1  # ids are global and increasing
            assert stamp >= previous_stamp and stamp.startswith(batch)
            assert int(cust) < customers and int(term) < terminals and float(amount) >= 0
            since = dt.datetime.fromisoformat(stamp) - dt.datetime.combine(params.origin, dt.time())
            assert int(secs) == since.total_seconds() and int(days_) == int(secs) // 86_400
            previous_id, previous_stamp = int(tx_id), stamp


def test_dirty_manifest_matches_the_damage_class_by_class(tmp_path: Path):
    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    write_days(clean, days=2, seed=9)
    summary = write_days(dirty, days=2, seed=9, dirty=0.02)
    assert set(summary.defects) == {d.value for d in Defect}

    for batch in summary.batches:
        manifest = pl.read_csv(
            dirty / f"{batch}.dirty.csv", schema_overrides={"expected_line": pl.String}
        )
        lines = (dirty / f"{batch}.txt").read_text().splitlines()
        clean_lines = data_lines(clean / f"{batch}.txt")
        clean_by_id = {int(line.split(",", 1)[0]): line for line in clean_lines}
        assert set(manifest["defect"]) == {d.value for d in Defect}

        for row in manifest.iter_rows(named=True):
            written = lines[row["line_no"] - 1]  # line numbers are 1-based, header is line 1
            assert written == row["written_line"]
            original = clean_by_id[row["transaction_id"]]
            defect = Defect(row["defect"])
            expected = row["expected_line"] or ""
            fields, clean_fields = written.split(","), original.split(",")
            if defect is Defect.DUPLICATE:
                assert written == original and lines[row["line_no"] - 2] == original
            elif defect is Defect.HOUR_24:
                assert fields[1].endswith(" 24:00:00")
                e = expected.split(",")
                assert (
                    e[1] == f"{(dt.date.fromisoformat(fields[1][:10]) + dt.timedelta(1))} 00:00:00"
                )
                assert int(fields[6]) == int(e[6]) - 1 and int(e[5]) // 86_400 == int(e[6])
            elif defect in REPAIRABLE:
                assert expected == original and written != original
                if defect is Defect.WRONG_SECONDS:
                    assert int(fields[5]) != int(clean_fields[5])
                else:
                    assert int(fields[6]) < int(fields[5]) // 86_400
            else:
                assert expected == ""
            checks = {
                Defect.EMPTY_TERMINAL: lambda f: f[3] == "",
                Defect.ERR_TERMINAL: lambda f: f[3] == "Err",
                Defect.TERMINAL_OUT_OF_RANGE: lambda f: int(f[3]) >= 10_000_000,
                Defect.BAD_CUSTOMER: lambda f: f[2] == "-999999",
                Defect.NONPOSITIVE_AMOUNT: lambda f: float(f[4]) <= 0,
                Defect.MISSING_CUSTOMER: lambda f: f[2] == "",
                Defect.MISSING_AMOUNT: lambda f: f[4] == "",
                Defect.UNPARSEABLE: lambda f: not ROW.match(",".join(f)),
            }
            if defect in checks:
                assert checks[defect](fields), (defect, written)

        # Everything the manifest does not name is exactly the clean line, in the clean order
        # (a duplicated line's first copy is untouched; the manifest names the second).
        named = set(manifest["line_no"])
        untouched = [line for i, line in enumerate(lines[1:], start=2) if i not in named]
        changed_ids = set(manifest.filter(pl.col("defect") != "duplicate")["transaction_id"])
        assert untouched == [
            line for line in clean_lines if int(line.split(",", 1)[0]) not in changed_ids
        ]
        duplicates = manifest.filter(pl.col("defect") == "duplicate").height
        assert len(lines) - 1 == len(clean_lines) + duplicates
