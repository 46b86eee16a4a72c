"""The review's domain side, without Dagster: what a decision records, and the errors the
assets turn into failures."""

from __future__ import annotations

import datetime as dt

import pytest

from fraud_assets.batch.training_data import NoFeatureBatchesError, latest_features
from fraud_assets.lake import Lake
from fraud_assets.lake.filesystems import filesystem_for
from fraud_assets.modeling.bootstrap import BootstrapComparison
from fraud_assets.modeling.review import (
    ALREADY_CHAMPION,
    FIRST_MODEL,
    Decision,
    NoChallengerError,
    ReviewConfig,
    ReviewOutcome,
    review_challenger,
)

COMPARISON = BootstrapComparison("average_precision", 0.5, 0.6, 0.1, 0.02, 0.18, 0.95, 1000)


def test_a_promotion_records_its_figures_on_the_version_and_in_the_metadata() -> None:
    window = (dt.date(2024, 3, 1), dt.date(2024, 3, 7))
    outcome = ReviewOutcome(Decision(True, "promoted: …", COMPARISON), 3, 2, 900, window)
    assert outcome.tags() == {
        "review_decision": "promoted",
        "review_reason": "promoted: …",
        "review_champion_version": "2",
        "review_metric": "average_precision",
        "review_champion_score": "0.500000",
        "review_challenger_score": "0.600000",
        "review_interval": "[0.020000, 0.180000]",
    }
    meta = outcome.metadata()
    assert meta["decision"] == "promoted" and meta["champion_version_before"] == 2
    assert meta["interval_low"] == 0.02 and meta["dagster/row_count"] == 900
    assert meta["review_window"] == "2024-03-01 .. 2024-03-07"


def test_a_first_model_compares_nothing() -> None:
    outcome = ReviewOutcome(FIRST_MODEL, 1, None)
    assert outcome.tags()["review_champion_version"] == "none"
    assert "review_metric" not in outcome.tags() and "metric" not in outcome.metadata()
    assert not outcome.unchanged and ReviewOutcome(ALREADY_CHAMPION, 2, 2).unchanged


@pytest.mark.slow  # MLflow
def test_no_challenger_is_a_review_error(tmp_path) -> None:
    from fraud_assets.modeling.registry import ModelRegistry

    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", model_name="empty")

    def never(days: int):  # noqa: ANN202
        raise AssertionError("no features are read without a challenger")

    with pytest.raises(NoChallengerError, match="alias `challenger`"):
        review_challenger(registry, ReviewConfig(), never)


def test_an_empty_lake_is_a_domain_error_not_a_dagster_one(tmp_path) -> None:
    with pytest.raises(NoFeatureBatchesError, match="ingest some batches first"):
        latest_features(Lake(*filesystem_for(str(tmp_path / "lake"))), 7)
