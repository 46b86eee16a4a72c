"""`fraud model promote|rollback|list` and `fraud backtest`, as people call them."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from fraud_assets.cli import app
from fraud_assets.lake import FEATURES
from fraud_assets.modeling.registry import ModelRegistry
from fraud_assets.modeling.training import TrainingConfig, train_model
from tests.support import FEATURE_LAKE_START

pytestmark = pytest.mark.slow

runner = CliRunner()


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("FRAUD_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("FRAUD_MLFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    return uri


def committed_features(root: Path) -> pl.DataFrame:
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for

    return Lake(*filesystem_for(str(root / "lake"))).read_table(FEATURES)


def lake_champion(lake: Path) -> int | None:
    from fraud_assets.lake import Lake
    from fraud_assets.lake.filesystems import filesystem_for
    from fraud_assets.modeling.champion_snapshot import read_champion

    synced, snapshot = read_champion(Lake(*filesystem_for(str(lake))))
    assert synced
    return snapshot.version if snapshot else None


def test_promote_and_rollback_move_the_champion_alias(
    tracking, tmp_path, feature_lake, monkeypatch
):
    monkeypatch.setenv("FRAUD_LAKE_URL", str(tmp_path / "lake"))
    features = committed_features(feature_lake)
    trained = train_model(
        features,
        features["tx_datetime"].max().date(),
        TrainingConfig(window_days=14, iterations=20),
    )
    registry = ModelRegistry(tracking, artifact_location=str(tmp_path / "artifacts"))
    first = registry.log_challenger(trained).version
    second = registry.log_challenger(trained).version

    assert runner.invoke(app, ["model", "promote", str(first)]).exit_code == 0
    promoted = runner.invoke(app, ["model", "promote", str(second), "--reason", "better AP"])
    assert (
        promoted.exit_code == 0 and f"champion is now v{second} (was v{first})" in promoted.output
    )
    assert registry.champion().version == second
    assert registry.version(second).tags["promotion_reason"] == "better AP"
    assert lake_champion(tmp_path / "lake") == second  # batch runs score drift with this copy

    listed = runner.invoke(app, ["model", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "champion" in listed.output and "challenger" in listed.output

    back = runner.invoke(app, ["model", "rollback"])
    assert back.exit_code == 0 and f"champion is now v{first} (was v{second})" in back.output
    assert registry.champion().version == first
    assert lake_champion(tmp_path / "lake") == first

    nothing = runner.invoke(app, ["model", "rollback"])
    assert nothing.exit_code == 1 and "no previous champion" in nothing.output

    missing = runner.invoke(app, ["model", "promote", "99"])
    assert missing.exit_code == 1


def test_backtest_prints_a_json_line_per_fold_and_their_mean(feature_lake, tmp_path):
    predictions = tmp_path / "predictions.parquet"
    start = FEATURE_LAKE_START.replace(day=30)  # 29 days of history: 14 train + 7 valid + 7 delay
    result = runner.invoke(
        app,
        [
            "backtest",
            str(feature_lake / "lake"),
            "--train-days", "14",
            "--delay-days", "7",
            "--test-start", start.isoformat(),
            "--test-days", "6",
            "--folds", "2",
            "--predictions-out", str(predictions),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    definitions, lines = lines[0], lines[1:]
    assert "handbook" in definitions["card_precision_at_100"]
    assert "strict" in definitions["card_precision_at_100_strict"]
    assert "7 days" in definitions["known_compromised"]
    assert [line["fold"] for line in lines] == [0, 1, "mean"]
    assert lines[0]["test_start"] == "2024-03-30" and lines[1]["test_start"] == "2024-04-05"
    keys = ("auc_roc", "average_precision", "card_precision_at_100", "recall", "fpr")
    assert "recall_scenario_2" in lines[2]  # simulator data: recall per fraud scenario
    for key in (*keys, "card_precision_at_100_strict"):
        assert 0 <= lines[2][key] <= 1
        assert lines[2][key] == pytest.approx((lines[0][key] + lines[1][key]) / 2, abs=1e-6)
    assert lines[2]["auc_roc"] > 0.7

    scored = pl.read_parquet(predictions)
    features = committed_features(feature_lake)
    test_days = features.filter(
        pl.col("tx_datetime").dt.date().is_between(start, start.replace(day=10, month=4))
    )
    assert scored.columns == ["transaction_id", "score"]
    assert sorted(scored["transaction_id"]) == sorted(test_days["transaction_id"])


def test_backtest_without_enough_history_says_which_dates_it_needs(feature_lake):
    result = runner.invoke(
        app, ["backtest", str(feature_lake / "lake"), "--test-start", "2024-03-10"]
    )
    assert result.exit_code == 1
    assert "Not enough data" in result.output and "2024-02" in result.output


def test_backtest_reads_investigator_labels_from_the_label_log(feature_lake, tmp_path):
    """--labels-dir: the service's label log; a label known on a gap day trains the fold."""
    from fraud_assets.serving.labels import LabelLog

    start = FEATURE_LAKE_START.replace(day=30)
    features = committed_features(feature_lake)
    gap = features.filter(pl.col("tx_datetime").dt.date() == start.replace(day=27))
    log = LabelLog(tmp_path / "labels")
    for row in gap.head(5).iter_rows(named=True):
        log.append({"transaction_id": row["transaction_id"], "customer_id": row["customer_id"],
                    "terminal_id": row["terminal_id"], "tx_time_seconds": row["tx_time_seconds"],
                    "tx_datetime": row["tx_datetime"].isoformat(), "fraud": True,
                    "labelled_at": "2026-01-01T00:00:00+00:00", "source": "desk:ana",
                    "known_at_seconds": row["tx_time_seconds"]})  # fmt: skip
    args = ["backtest", str(feature_lake / "lake"), "--train-days", "14", "--delay-days", "7",
            "--test-start", start.isoformat(), "--test-days", "2"]  # fmt: skip
    result = runner.invoke(app, [*args, "--labels-dir", str(tmp_path / "labels")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    fold = next(x for x in lines if x.get("fold") == 0)
    assert fold["investigator_rows"] == 5
    missing = runner.invoke(app, [*args, "--labels-dir", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "is not a folder" in " ".join(missing.output.split())
