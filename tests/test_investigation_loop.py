"""The measured loop end to end on a small simulation: the queue respects the budget, the
feedback variant records labels and retrains, and `fraud investigate --simulate` reports it."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from typer.testing import CliRunner

from fraud_assets.cli import app
from fraud_assets.features.polars_engine import compute_features
from fraud_assets.investigation.loop import LoopConfig, run_loop
from fraud_assets.modeling.training import TrainingConfig
from fraud_assets.simulation import SimulationParams, TransactionSimulator

pytestmark = pytest.mark.slow  # CatBoost training in a loop

START = dt.date(2018, 4, 1)
TRAINING = TrainingConfig(window_days=14, validation_days=7, delay_days=7, iterations=30)


@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    params = SimulationParams(customers=400, terminals=800, days=42, start_date=START, seed=5)
    frame = pl.concat([d.frame for d in TransactionSimulator(params).days()])
    return compute_features(frame.drop("base_amount"))


def test_feedback_loop_runs_within_the_budget(features) -> None:
    first, last = START + dt.timedelta(days=30), START + dt.timedelta(days=41)
    result = run_loop(features, first, last, LoopConfig("feedback", k=10, retrain_every=5,
                                                         training=TRAINING))  # fmt: skip
    assert len(result.days) == 12 and result.retrains == 2
    assert all(0 < d.checked <= 10 and 0 <= d.precision <= 1 for d in result.days)
    assert sum(d.labels for d in result.days) > 0
    static = run_loop(features, first, last, LoopConfig("static", k=10, training=TRAINING))
    assert static.retrains == 0
    # Day one has no feedback yet and the same first model: the same queue.
    assert static.days[0].confirmed == result.days[0].confirmed


def test_investigate_simulate_command() -> None:
    out = CliRunner().invoke(
        app,
        ["investigate", "--simulate", "--customers", "300", "--terminals", "600", "--days", "46",
         "--history-days", "43", "--k", "10", "--iterations", "20", "--variant", "feedback"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "feedback" in out.output and "card precision@10" in out.output
    refused = CliRunner().invoke(app, ["investigate"])
    assert refused.exit_code != 0
