"""Drift and data-quality monitoring of batches, and the simulator's drift scenario.

One simulated world, two histories: the same seed with and without a drift scenario that, from
day 45 on, makes every customer pay 3x larger amounts 2x as often. Days before 45 are the same
bytes in both. The feature windows need 37 days to fill (30-day terminal windows behind a 7-day
label delay), so the reference is the warm week just before the drift, days 38-44, and the same
calendar day 47 is judged once from each history.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from fraud_assets.batch.pipeline import clean_into_lake, features_into_lake
from fraud_assets.cleaning import CleaningConfig
from fraud_assets.cli import app
from fraud_assets.lake import FEATURES, Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.monitoring.drift import (
    DEFAULT_DRIFT_SHARE,
    MONITORED_FEATURES,
    DriftResult,
    drift_report,
    monitored_columns,
)
from fraud_assets.monitoring.quality import data_quality
from fraud_assets.privacy import Pseudonymizer
from fraud_assets.rawdata.format import COLUMNS
from fraud_assets.simulation import SimulationParams, TransactionSimulator
from fraud_assets.simulation.params import DriftScenario
from fraud_assets.simulation.writer import write_simulation

pytestmark = pytest.mark.slow

START = dt.date(2024, 3, 1)
DRIFT_DAY = 45
DAYS = DRIFT_DAY + 3
JUDGED_DAY = DRIFT_DAY + 2
DRIFT = DriftScenario(start_day=DRIFT_DAY, amount_factor=3.0, tx_per_day_factor=2.0)
WORLD = dict(customers=300, terminals=400, days=DAYS, start_date=START, seed=0)


def batch(day: int) -> str:
    return (START + dt.timedelta(days=day)).isoformat()


@dataclass
class World:
    root: Path
    reference: pl.DataFrame  # features of days 38-44, identical in both histories
    stable: pl.DataFrame  # features of day 47 without drift
    drifted: pl.DataFrame  # features of day 47 with drift


def _ingest(lake: Lake, landing: Path, batches: list[str]) -> None:
    config = CleaningConfig(origin_date=START)
    for b in batches:
        result = clean_into_lake(lake, landing / f"{b}.txt", b, Pseudonymizer(b"test-key"), config)
        features_into_lake(lake, b, batch_clean=result.clean)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("monitoring")
    plain = write_simulation(SimulationParams(**WORLD), *filesystem_for(str(root / "plain")))
    write_simulation(SimulationParams(**WORLD, drift=DRIFT), *filesystem_for(str(root / "drift")))
    stable_lake = Lake(*filesystem_for(str(root / "lake-stable")))
    _ingest(stable_lake, root / "plain", plain.batches)
    # The drift history shares days 0-44 byte for byte: reuse them, redo only the drifted days.
    shutil.copytree(root / "lake-stable", root / "lake-drift")
    drift_lake = Lake(*filesystem_for(str(root / "lake-drift")))
    _ingest(drift_lake, root / "drift", [batch(d) for d in range(DRIFT_DAY, DAYS)])
    reference = pl.concat(
        stable_lake.read_batch(FEATURES, batch(d)) for d in range(DRIFT_DAY - 7, DRIFT_DAY)
    )
    return World(
        root,
        reference,
        stable_lake.read_batch(FEATURES, batch(JUDGED_DAY)),
        drift_lake.read_batch(FEATURES, batch(JUDGED_DAY)),
    )


@pytest.fixture(scope="module")
def stable_report(world: World) -> DriftResult:
    return drift_report(world.reference, world.stable)


@pytest.fixture(scope="module")
def drifted_report(world: World) -> DriftResult:
    return drift_report(world.reference, world.drifted)


# --- simulator ------------------------------------------------------------------------------


def test_drift_scenario_leaves_days_before_it_byte_identical_and_changes_those_after(
    world: World,
):
    for day in range(DAYS):
        plain = (world.root / "plain" / f"{batch(day)}.txt").read_bytes()
        drifted = (world.root / "drift" / f"{batch(day)}.txt").read_bytes()
        assert (plain == drifted) == (day < DRIFT_DAY), day


def test_drift_days_have_larger_amounts_and_more_transactions():
    params = SimulationParams(
        customers=400, terminals=500, days=6, seed=3, drift=DriftScenario(3, 3.0, 2.0)
    )
    days = [d.frame for d in TransactionSimulator(params).days()]
    before, after = pl.concat(days[:3]), pl.concat(days[3:])
    # base_amount: before scenario 3's x5, so the ratio is the process's own.
    ratio = after["base_amount"].mean() / before["base_amount"].mean()
    assert 2.7 < ratio < 3.3
    assert 1.8 < after.height / before.height < 2.2


def test_drift_factors_without_a_start_day_change_nothing():
    base = SimulationParams(customers=100, terminals=150, days=3, seed=5)
    idle = SimulationParams(
        customers=100, terminals=150, days=3, seed=5, drift=DriftScenario(None, 9.0, 9.0)
    )
    for a, b in zip(
        TransactionSimulator(base).days(), TransactionSimulator(idle).days(), strict=True
    ):
        assert a.frame.equals(b.frame)


@pytest.mark.parametrize(
    "drift", [DriftScenario(-1), DriftScenario(2, 0.0), DriftScenario(2, 1.0, -1.0)]
)
def test_invalid_drift_settings_are_refused(drift: DriftScenario):
    with pytest.raises(ValueError):
        SimulationParams(days=3, drift=drift)


def test_simulate_command_produces_drift_on_purpose(tmp_path: Path):
    runner = CliRunner()
    help_text = runner.invoke(app, ["simulate", "--help"], env={"COLUMNS": "200"}).output
    assert "Drift scenario" in help_text and "--drift-amount-factor" in help_text
    args = ["simulate", "--out", str(tmp_path), "--customers", "200", "--terminals", "300"]
    args += ["--days", "4", "--start-date", "2024-03-01"]
    args += ["--drift-start-day", "2", "--drift-amount-factor", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output

    def mean_amount(day: str) -> float:
        frame = pl.read_csv(tmp_path / f"{day}.txt", comment_prefix="#", has_header=False)
        return frame.columns and frame[:, COLUMNS.index("tx_amount")].mean()

    assert mean_amount("2024-03-04") > 2.5 * mean_amount("2024-03-02")


# --- drift ----------------------------------------------------------------------------------


def test_verdict_threshold_is_evidently_default():
    from evidently.presets import DataDriftPreset

    assert DEFAULT_DRIFT_SHARE == DataDriftPreset().drift_share == 0.5


def test_daily_batches_leave_out_the_weekend_flag_which_only_reflects_the_date():
    assert "tx_during_weekend" not in monitored_columns(1)
    assert "tx_during_weekend" in monitored_columns(30) and "tx_amount" in MONITORED_FEATURES


def test_a_stable_batch_is_not_drifted(stable_report: DriftResult):
    assert not stable_report.drifted, stable_report.to_markdown()
    assert stable_report.drift_share < DEFAULT_DRIFT_SHARE
    assert "tx_amount" not in stable_report.drifted_columns()


def test_a_drifted_batch_is_drifted_on_the_columns_that_moved(drifted_report: DriftResult):
    moved = {
        "tx_amount",
        "customer_avg_amount_1d",
        "customer_avg_amount_7d",
        "customer_avg_amount_30d",
        "customer_nb_tx_1d",
        "customer_nb_tx_7d",
        "tx_fraud",  # more amounts above 220: a larger fraud share (scenario 1)
    }
    assert drifted_report.drifted, drifted_report.to_markdown()
    assert moved <= set(drifted_report.drifted_columns())
    assert "tx_during_night" not in drifted_report.drifted_columns()  # times of day unchanged
    assert drifted_report.drift_share >= DEFAULT_DRIFT_SHARE
    amount = drifted_report.column("tx_amount")
    assert amount.method == "Wasserstein distance (normed)" and amount.score > 1.0


def test_the_label_joins_the_compared_columns_and_a_missing_score_is_skipped(
    drifted_report: DriftResult,
):
    names = [c.column for c in drifted_report.columns]
    assert "tx_fraud" in names and "score" not in names
    assert set(names) == {*monitored_columns(1), "tx_fraud"}


def test_markdown_has_one_row_per_column_and_the_verdict(drifted_report: DriftResult):
    md = drifted_report.to_markdown()
    assert md.startswith("| column | test | score | threshold | drifted |")
    row = next(line for line in md.splitlines() if line.startswith("| tx_amount |"))
    assert "Wasserstein" in row and row.endswith("| **yes** |")
    night = next(line for line in md.splitlines() if line.startswith("| tx_during_night |"))
    assert night.endswith("| no |")
    assert f"({drifted_report.drift_share:.1%})" in md and "**drifted**" in md


def test_html_report_opens_and_names_the_drifted_columns(
    drifted_report: DriftResult, tmp_path: Path
):
    path = tmp_path / "drift.html"
    path.write_text(drifted_report.html, encoding="utf-8")
    html = path.read_text(encoding="utf-8")
    assert path.stat().st_size > 10_000
    assert html.lstrip().lower().startswith("<!doctype html") and "</html>" in html
    # Evidently's drift table carries each column's verdict next to its name.
    one_column = (
        r'"column_name": "(\w+)"(?:(?!"column_name").)*?"data_drift": "(Detected|Not Detected)"'
    )
    verdicts = dict(re.findall(one_column, html, flags=re.DOTALL))
    for column in drifted_report.columns:
        assert verdicts[column.column] == ("Detected" if column.drifted else "Not Detected")


def test_large_frames_are_sampled_deterministically(world: World):
    columns = ["tx_amount", "customer_nb_tx_1d"]
    a = drift_report(world.reference, world.drifted, columns, sample_rows=300, seed=1)
    b = drift_report(world.reference, world.drifted, columns, sample_rows=300, seed=1)
    assert a.reference_rows == a.current_rows == 300
    assert [c.score for c in a.columns] == [c.score for c in b.columns]


def test_missing_columns_are_refused(world: World):
    with pytest.raises(ValueError, match="nope"):
        drift_report(world.reference, world.stable, ["tx_amount", "nope"])


# --- data quality ---------------------------------------------------------------------------


NEW_TERMINAL = 987_654_321_987  # pseudonymised ids are 64-bit integers; this one never occurs


def test_quality_counts_missing_out_of_range_and_new_categories(world: World):
    current = world.stable.head(200).with_row_index("i")
    current = current.with_columns(
        tx_amount=pl.when(pl.col("i") < 3)
        .then(None)
        .when(pl.col("i") == 3)
        .then(1e6)
        .when(pl.col("i") == 4)
        .then(-1.0)
        .otherwise(pl.col("tx_amount")),
        terminal_id=pl.when(pl.col("i").is_between(5, 9))
        .then(NEW_TERMINAL)
        .otherwise(pl.col("terminal_id")),
    ).drop("i")
    q = data_quality(world.reference, current, ["tx_amount", "customer_nb_tx_1d"])
    amount, terminal = q.column("tx_amount"), q.column("terminal_id")
    assert (amount.missing, amount.below_range) == (3, 1)
    assert amount.above_range >= 1 and amount.reference_max == world.reference["tx_amount"].max()
    assert (terminal.new_categories, terminal.new_category_rows) == (1, 5)
    assert terminal.new_category_share == pytest.approx(5 / 200)
    assert not q.ok
    issues = "\n".join(q.issues())
    assert "tx_amount: 3 missing" in issues and "terminal_id: 1 new categories" in issues
    assert str(NEW_TERMINAL) in issues and "| terminal_id |" in q.to_markdown()


def test_quality_of_a_stable_batch_is_ok_and_a_drifted_one_flags_large_amounts(world: World):
    stable = data_quality(world.reference, world.stable, monitored_columns(1))
    assert stable.ok, stable.to_markdown()
    drifted = data_quality(world.reference, world.drifted, monitored_columns(1))
    assert drifted.column("tx_amount").above_range > 5 * (
        stable.column("tx_amount").above_range + 1
    )
    strict = data_quality(
        world.reference, world.drifted, ["tx_amount"], max_out_of_range_share=0.005
    )
    assert any(i.startswith("tx_amount:") and "above" in i for i in strict.issues())
    # A busier day reaches a few rarely used terminals: counted, but below the tolerance.
    assert drifted.column("terminal_id").new_category_share < 0.01
    assert not [i for i in drifted.issues() if i.startswith("terminal_id")]
