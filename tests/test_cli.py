"""`fraud simulate` as people call it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fraud_assets.cli import app
from fraud_assets.lake import Lake
from fraud_assets.lake.filesystems import filesystem_for

runner = CliRunner()


def committed(lake: Path, table: str, batch_id: str):  # noqa: ANN201 - a Polars frame
    """The batch's committed rows of a lake table (what readers see)."""
    return Lake(*filesystem_for(str(lake))).read_batch(table, batch_id)


def _commands(group, prefix: tuple[str, ...] = ()):  # noqa: ANN001 - a click or typer group
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a sub-group such as `fraud model`
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


@pytest.mark.parametrize(
    ("path", "command"),
    list(_commands(typer.main.get_command(app))),
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_help_documents_every_option(path, command):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert command.help, f"fraud {' '.join(path)} has no description"
    options = [p for p in command.params if p.param_type_name == "option"]
    assert options or path == ("demo",), "the option check must see the options"
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            assert param.help, f"{param.opts[0]} has no help text"
            assert param.opts[0] in result.output


def test_simulate_writes_batches_and_prints_a_summary(tmp_path: Path):
    out = tmp_path / "landing"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--out",
            str(out),
            "--customers",
            "100",
            "--terminals",
            "200",
            "--days",
            "3",
            "--start-date",
            "2024-05-01",
            "--seed",
            "3",
            "--dirty",
            "0.05",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.txt")) == [
        "2024-05-01.txt",
        "2024-05-02.txt",
        "2024-05-03.txt",
    ]
    assert len(list(out.glob("*.done"))) == 3 and len(list(out.glob("*.dirty.csv"))) == 3
    text = " ".join(result.output.split())  # rich wraps lines at the terminal's width
    assert re.search(r"Wrote 3 batches to .*: [\d,]+ transactions, [\d,]+ frauds .* rows/s", text)
    assert re.search(r"Damaged rows \(see \*\.dirty\.csv\): \d+ — bad_customer \d+", text)


def test_bad_parameters_are_refused_with_a_reason(tmp_path: Path):
    result = runner.invoke(
        app,
        [
            "simulate",
            "--out",
            str(tmp_path),
            "--start-date",
            "2024-01-01",
            "--origin-date",
            "2024-02-01",
        ],
    )
    assert result.exit_code == 2
    assert "origin date" in result.output
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--days", "0"])
    assert result.exit_code == 2


# -- fraud clean: every batch accounted for, failures named, exit code 1 ---------------------

GOOD_DAY = "2024-05-01"


def good_batch(folder: Path, batch_id: str = GOOD_DAY) -> bytes:
    from fraud_assets.rawdata.format import HEADER_LINE

    body = (
        f"1,{batch_id} 10:00:00,3,4,12.50,36000,0,0,0\n2,{batch_id} 11:00:00,3,5,7.00,39600,0,0,0\n"
    )
    data = HEADER_LINE + body.encode()
    (folder / f"{batch_id}.txt").write_bytes(data)
    return data


def _marker_for(data: bytes, batch_id: str) -> str:
    import hashlib

    from fraud_assets.rawdata.format import BatchMarker

    digest = hashlib.sha256(data).hexdigest()
    return BatchMarker(batch_id, 2, len(data), digest, batch_id).to_json()


def _bad_files(folder: Path, kind: str) -> tuple[str, str]:
    """Writes one bad batch of `kind` beside a good one; (its file name, what the report says)."""
    import gzip

    from fraud_assets.rawdata.format import HEADER_LINE

    name = "2024-05-02.txt"
    path = folder / name
    if kind == "empty file":
        path.write_bytes(b"")
        return name, "<empty file>"
    if kind == "wrong header":
        path.write_bytes(b"id,amount\n1,2\n")
        return name, "header does not match"
    if kind == "gzip":
        path.write_bytes(gzip.compress(HEADER_LINE + b"1,2024-05-02 10:00:00,3,4,1.00,0,0,0,0\n"))
        return name, "gzip-compressed"
    if kind == "byte-order mark":
        path.write_bytes(b"\xef\xbb\xbf" + HEADER_LINE)
        return name, "byte-order mark"
    if kind == "markup in the header":
        path.write_bytes(b"[/oops] [bold]not a header\n1,2\n")
        return name, "[/oops] [bold]not a header"
    if kind == "not a real date":
        name = "2025-13-45.txt"
        (folder / name).write_bytes(HEADER_LINE)
        return name, "is not a real date"
    if kind == "marker mismatch":
        data = good_batch(folder, "2024-05-02")
        (folder / "2024-05-02.done").write_text(_marker_for(data + b"changed", "2024-05-02"))
        return name, "does not match its completion marker"
    raise AssertionError(kind)


BAD_KINDS = [
    "empty file",
    "wrong header",
    "gzip",
    "byte-order mark",
    "markup in the header",
    "not a real date",
    "marker mismatch",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_clean_names_a_bad_batch_exits_1_and_still_cleans_the_good_one(tmp_path: Path, kind):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    landing.mkdir()
    good_batch(landing)
    name, says = _bad_files(landing, kind)
    result = runner.invoke(app, ["clean", str(landing), "--out", str(lake)], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    assert name in text and says in text
    assert "1 of 2 batch(es) failed" in text
    assert committed(lake, "clean", GOOD_DAY).height > 0


def test_clean_exits_0_when_every_batch_is_clean_and_checks_a_matching_marker(tmp_path: Path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    landing.mkdir()
    data = good_batch(landing)
    (landing / f"{GOOD_DAY}.done").write_text(_marker_for(data, GOOD_DAY))
    result = runner.invoke(app, ["clean", str(landing), "--out", str(lake)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert re.search(
        rf"{GOOD_DAY}\.txt\s+│\s+2\s+│\s+2\s+│\s+0 \(none\)\s+│\s+0\s+│\s+ok", result.output
    )


def test_a_bad_date_given_by_name_is_reported_not_a_crash(tmp_path: Path):
    from fraud_assets.rawdata.format import HEADER_LINE

    (tmp_path / "2025-13-45.txt").write_bytes(HEADER_LINE)
    args = ["clean", str(tmp_path / "2025-13-45.txt"), "--out", str(tmp_path / "lake")]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    assert "is not a real date" in " ".join(result.output.split())


def test_clean_uses_the_terminal_file_beside_the_batches(tmp_path: Path):

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    landing.mkdir()
    good_batch(landing)  # terminals 4 and 5
    (landing / "terminals.csv").write_text("terminal_id\n4\n")
    result = runner.invoke(app, ["clean", str(landing), "--out", str(lake)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "unknown_terminal 1" in result.output
    quarantine = committed(lake, "quarantine", GOOD_DAY)
    assert quarantine["reason"].to_list() == ["unknown_terminal"]


def test_features_exits_1_naming_a_batch_whose_history_is_missing(tmp_path: Path):
    from fraud_assets.rawdata.format import HEADER_LINE

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    landing.mkdir()
    good_batch(landing)
    # Counters from 2024-05-01: days 2024-05-02..09 were never delivered.
    seconds = 9 * 86_400 + 36_000
    body = f"5,2024-05-10 10:00:00,3,4,12.50,{seconds},9,0,0\n".encode()
    (landing / "2024-05-10.txt").write_bytes(HEADER_LINE + body)
    args = ["features", str(landing), "--out", str(lake)]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "1 of 2 batch(es) failed" in text and "2024-05-02" in text
    assert committed(lake, "features", GOOD_DAY).height > 0


@pytest.mark.slow  # 25 full `fraud clean` runs
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_no_file_content_crashes_clean_and_the_good_batch_is_always_cleaned(
    tmp_path_factory, content
):
    from fraud_assets.rawdata.format import HEADER_LINE

    root = tmp_path_factory.mktemp("fuzz")
    landing, lake = root / "landing", root / "lake"
    landing.mkdir()
    good_batch(landing)
    for data in (content, HEADER_LINE + content):
        (landing / "2024-05-02.txt").write_bytes(data)
        result = runner.invoke(app, ["clean", str(landing), "--out", str(lake)])
        assert result.exit_code in (0, 1), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert committed(lake, "clean", GOOD_DAY).height > 0
