"""Model selection: candidates, the time budget, MLflow parent/child runs, and the challenger
trained with the winner's settings, with its model card."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from fraud_assets.defs.models import challenger_model, model_selection
from fraud_assets.lake import FEATURES
from fraud_assets.modeling.selection import DEFAULT_GRID, candidates, fold_starts, select
from fraud_assets.modeling.selection_log import CANDIDATE, KIND_TAG, PARENT_TAG, SELECTION
from fraud_assets.modeling.training import TrainingConfig
from tests.support import SMALL_TRAINING, platform_resources

pytestmark = pytest.mark.dagster  # trains CatBoost, materializes assets

TINY_GRID = {"window_days": [7, 14], "depth": [3, 4]}


def test_candidates_start_with_the_base_settings_and_cover_the_grid_once():
    base = TrainingConfig(window_days=28, depth=6)
    grid = {"window_days": (14, 28), "depth": (4, 6), "imbalance": ("none", "class_weights")}
    found = candidates(grid, base, seed=3)
    assert found[0] == {"window_days": 28, "depth": 6, "imbalance": "none"}
    assert len(found) == 8 and len({json.dumps(c, sort_keys=True) for c in found}) == 8


def test_the_amount_bins_are_searched_and_reach_catboost():
    base = TrainingConfig()
    found = candidates({"amount_border_count": (0, 1024, 4096)}, base, seed=1)
    assert found[0] == {"amount_border_count": base.amount_border_count}
    assert sorted(c["amount_border_count"] for c in found) == [0, 1024, 4096]
    assert "amount_border_count" in DEFAULT_GRID
    index = base.features.index("tx_amount")
    for settings in found:
        params = winner_config_for(settings, base).catboost_params()
        bins = settings["amount_border_count"]
        expected = [f"{index}:border_count={bins}"] if bins else None
        assert params.get("per_float_feature_quantization") == expected


def winner_config_for(settings: dict, base: TrainingConfig) -> TrainingConfig:
    return dataclasses.replace(base, **settings)  # as winner_config / selected_training do


def test_candidates_refuse_a_setting_that_is_not_searchable():
    with pytest.raises(ValueError, match="seed"):
        candidates({"seed": (1, 2)})


def test_fold_starts_are_the_newest_labelled_weeks():
    import datetime as dt

    starts = fold_starts(dt.date(2024, 2, 28), delay_days=7, folds=2)
    # labels end 2024-02-21: the weeks 02-08..14 and 02-15..21.
    assert starts == [dt.date(2024, 2, 8), dt.date(2024, 2, 15)]


@pytest.fixture(scope="module")
def features(feature_lake: Path) -> pl.DataFrame:
    return pl.read_parquet(f"{feature_lake}/lake/{FEATURES}/**/*.parquet")


def test_select_stops_starting_candidates_once_the_budget_is_spent(features):
    ticks = itertools.count(0, 100)  # every clock read: 100 s later
    data_end = features["tx_datetime"].dt.date().max()
    base = TrainingConfig(**{k: SMALL_TRAINING[k] for k in ("window_days", "iterations")})
    result = select(
        features, data_end, base, TINY_GRID, folds=1, budget_seconds=350,
        clock=lambda: float(next(ticks)),
    )  # fmt: skip
    # Clock reads: began 0; candidate 0 starts 100, ends 200; candidate 1 is checked at 300
    # (< 350: it runs) starts 400, ends 500; candidate 2 is checked at 600 (>= 350): stop.
    assert len(result.candidates) == 2
    assert result.candidates[0].settings == {"window_days": 14, "depth": 6}
    assert all(c.folds for c in result.candidates)
    metric = result.winner.mean["average_precision"]
    assert metric == max(c.mean["average_precision"] for c in result.candidates)


def test_a_candidate_whose_window_does_not_fit_the_data_scores_nan_instead_of_failing(features):
    data_end = features["tx_datetime"].dt.date().max()
    base = TrainingConfig(window_days=14, iterations=50)
    result = select(features, data_end, base, {"window_days": [14, 400]}, folds=1)
    by_window = {c.settings["window_days"]: c for c in result.candidates}
    assert by_window[400].folds == [] and by_window[400].mean["average_precision"] != 0.5
    assert result.winner.settings["window_days"] == 14


@pytest.fixture
def resources(feature_lake: Path, tmp_path: Path) -> dict[str, object]:
    resources = platform_resources(feature_lake / "landing", tmp_path)
    return {**resources, "lake": type(resources["lake"])(url=str(feature_lake / "lake"))}


def test_selection_asset_logs_a_parent_run_with_a_child_per_candidate_and_the_challenger_uses_the_winner(  # noqa: E501
    resources,
):
    run_config = {
        "ops": {
            "model_selection": {
                "config": {
                    "folds": 1,
                    "budget_seconds": 10_000,
                    "window_days": [7, 14],
                    "imbalance": ["none"],
                    "depth": [3],
                    "learning_rate": [0.1],
                    "l2_leaf_reg": [3.0],
                    "border_count": [64],
                    "amount_border_count": [0, 4096],
                }
            }
        }
    }
    with dg.instance_for_test() as instance:
        selected = dg.materialize(
            [model_selection], resources=resources, instance=instance, run_config=run_config
        )
        meta = selected.asset_materializations_for_node("model_selection")[0].metadata
        # The configured settings (window 14, depth 6, 254 bins, the amount's 4 096) first, then
        # the 4 of the grid (the amount's own bins searched too).
        assert meta["candidates_tried"].value == 5
        winner = meta["winner"].value
        registry = resources["models"].registry()  # type: ignore[attr-defined]
        client = registry.client
        parent = client.get_run(meta["mlflow_parent_run_id"].value)
        assert parent.data.tags[KIND_TAG] == SELECTION
        assert parent.info.status == "FINISHED"
        children = client.search_runs(
            [registry.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
        )
        assert len(children) == 5
        assert all(c.data.tags[KIND_TAG] == CANDIDATE for c in children)
        assert all("mean_average_precision" in c.data.metrics for c in children)
        assert all("fold0_card_precision_at_100" in c.data.metrics for c in children)
        best = max(children, key=lambda c: c.data.metrics["mean_average_precision"])
        assert {k: str(v) for k, v in winner.items()} == {k: best.data.params[k] for k in winner}

        trained = dg.materialize([challenger_model], resources=resources, instance=instance)
    tmeta = trained.asset_materializations_for_node("challenger_model")[0].metadata
    assert parent.info.run_id in tmeta["settings_from"].value
    version = registry.challenger()
    params = client.get_run(version.run_id).data.params
    assert params["depth"] == str(winner["depth"])
    assert params["window_days"] == str(winner["window_days"])
    assert params["border_count"] == str(winner["border_count"])
    assert params["amount_border_count"] == str(winner["amount_border_count"])
    card_path = client.download_artifacts(version.run_id, "model_card.json")
    card = json.loads(Path(card_path).read_text())
    assert card["settings_from"] == tmeta["settings_from"].value
    assert card["data_window"]["batches"] and card["feature_importance"]
    assert len(card["selection_folds"]) == 1 and "auc_roc" in card["selection_folds"][0]
    assert card["threshold"]["policy"] == "max_recall_at_fpr"
    assert "recall_scenario_2" in card["validation_metrics"]
    assert (
        "## Feature importance"
        in Path(client.download_artifacts(version.run_id, "model_card.md")).read_text()
    )


def test_without_a_selection_run_the_challenger_uses_the_configured_settings(resources):
    with dg.instance_for_test() as instance:
        trained = dg.materialize([challenger_model], resources=resources, instance=instance)
    meta = trained.asset_materializations_for_node("challenger_model")[0].metadata
    assert "configured settings" in meta["settings_from"].value
    assert "## Operating point" in meta["model_card"].value
