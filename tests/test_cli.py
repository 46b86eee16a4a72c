"""`fraud simulate` as people call it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from fraud_assets.cli import app

runner = CliRunner()


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
